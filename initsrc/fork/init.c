/*
 * fork: a child made by clone() without CLONE_VM (what fork() does). With an MMU the child gets a
 * copy-on-write copy of the parent's memory, so its write stays invisible to the parent. Without one
 * there are no page tables to share copy-on-write: the kernel hands the child the same memory, uncopied
 * (riscv has no fork syscall; Linux's own fork() returns -EINVAL on NOMMU for this reason).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "../lib/mmulab.h"

static volatile char shared = 'A';
static char child_stack[16384] __attribute__((aligned(16)));

static int child(void *unused)
{
	(void)unused;
	say("fork: child writing 'B' into its byte");
	shared = 'B';
	return 0;
}

int main(void)
{
	say("fork: parent byte before = %c", shared);
	/* The child gets its own stack: on NOMMU it runs at the same time as the parent, in the same memory. */
	pid_t pid = clone(child, child_stack + sizeof child_stack, SIGCHLD, NULL);
	if (pid < 0) {
		say("fork: clone without CLONE_VM failed: %d", -errno);
		power_off();
	}
	waitpid(pid, NULL, 0);
	say("fork: parent byte after child exit = %c", shared);
	if (shared == 'A')
		say("fork: the child wrote its own copy (copy-on-write)");
	else
		say("fork: the child wrote the parent's memory: no page tables, no copy-on-write");
	power_off();
}
