/*
 * addrspace, parent (the init): keep a value in a page of my own memory, start a separate program with
 * vfork + execve and tell it where that page is. Without an MMU there is one address space, so the
 * child's writes land in my page; with one, my address means nothing in the child's address space.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "../lib/procfs.h"

#define CHILD "/bin/addrspace-child"

static int initialised = 1; /* names this program's data in /proc/self/maps */

int main(void)
{
	mount_fs("proc", "/proc");
	volatile unsigned long *value =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (value == MAP_FAILED) {
		say("addrspace: mmap failed");
		power_off();
	}
	*value = 0x1111;
	say("addrspace: parent keeps 0x%lx at 0x%lx", *value, (unsigned long)value);
	maps_data("parent", (const void *)main, &initialised);

	char address[32];
	snprintf(address, sizeof address, "0x%lx", (unsigned long)value);
	say("addrspace: starting " CHILD " with vfork+execve");
	char *argv[] = {CHILD, address, NULL};
	char *envp[] = {NULL};
	pid_t pid = vfork();
	if (pid == 0) {
		execve(CHILD, argv, envp);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		say("addrspace: parent: child killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		say("addrspace: parent: child exited with status %d", WEXITSTATUS(status));
	say("addrspace: parent: value now 0x%lx", *value);
	if (*value == 0x1111)
		say("addrspace: parent: my memory is untouched: isolated address spaces");
	else
		say("addrspace: parent: the child changed my memory: no isolation without an MMU");
	power_off();
}
