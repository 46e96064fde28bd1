/*
 * clone_vm in C: the parent keeps a byte, a child made with clone(CLONE_VM | CLONE_VFORK) stores 'B'
 * into it, the parent prints what it sees after the child exits. Same output as init.S, plus both
 * processes' /proc/self/maps as chart points: with CLONE_VM they are one address space, on both kernels.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "../lib/procfs.h"

int main(void); /* its address names this program's text in /proc/self/maps */
static volatile char shared = 'A';
static char child_stack[16384] __attribute__((aligned(16)));

static int child(void *unused)
{
	(void)unused;
	say("child: writing 'B' into the shared byte");
	maps_data("child", (const void *)main, (const void *)&shared);
	data("maps", "child.target", "0x%lx 0x%lx", (unsigned long)&shared, (unsigned long)&shared);
	shared = 'B';
	return 0;
}

int main(void)
{
	say("clone_vm init started");
	mount_fs("proc", "/proc");
	say("parent: shared byte before clone = %c", shared);
	maps_data("parent", (const void *)main, (const void *)&shared);
	pid_t pid = clone(child, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	if (pid < 0) {
		say("clone failed");
		power_off();
	}
	waitpid(pid, NULL, 0);
	say("parent: shared byte after child exit = %c", shared);
	power_off();
}
