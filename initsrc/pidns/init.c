/*
 * pidns: clone(CLONE_NEWPID | CLONE_NEWUTS) gives a child that is pid 1 of a new PID namespace and has
 * its own hostname, while the parent sees another pid and keeps its hostname. CLONE_VM | CLONE_VFORK
 * too, so the same program runs on NOMMU (which cannot copy memory for a child).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "../lib/mmulab.h"

static char child_stack[16384] __attribute__((aligned(16)));

static int child(void *unused)
{
	(void)unused;
	struct utsname names;
	say("pidns: child sees itself as pid %d", getpid());
	if (sethostname("mmulab-child", 12) != 0)
		say("pidns: child: sethostname failed: %d", -errno);
	uname(&names);
	say("pidns: child hostname = %s", names.nodename);
	return 0;
}

int main(void)
{
	struct utsname names;
	int flags = CLONE_NEWPID | CLONE_NEWUTS | CLONE_VM | CLONE_VFORK | SIGCHLD;
	pid_t pid = clone(child, child_stack + sizeof child_stack, flags, NULL);
	if (pid < 0) {
		say("pidns: clone(CLONE_NEWPID | CLONE_NEWUTS) failed: %d", -errno);
		power_off();
	}
	waitpid(pid, NULL, 0);
	say("pidns: parent sees the child as pid %d", pid);
	uname(&names);
	say("pidns: parent hostname = %s", names.nodename);
	power_off();
}
