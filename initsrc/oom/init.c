/*
 * oom: init starts a hog (vfork + execve: nothing is allocated in the vfork child) that allocates until the
 * OOM killer ends it; init reports the signal and shows that the system stays up. With "mmulab.oom=init" on
 * the kernel command line init is the hog itself: init cannot be killed, so the OOM killer finds no
 * killable process and the kernel panics ("System is deadlocked on memory"), which that run expects.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

#include "../lib/procfs.h"

#define HOG "/bin/hog"

int main(void)
{
	mount_fs("proc", "/proc");
	char *cmdline = read_file("/proc/cmdline");
	if (cmdline && strstr(cmdline, "mmulab.oom=init")) {
		say("oom: init is the hog: the OOM killer may never kill init");
		char *argv[] = {HOG, "init", NULL};
		char *envp[] = {NULL};
		execve(HOG, argv, envp);
		say("oom: execve " HOG " failed: %s", strerror(errno));
		power_off();
	}
	say("oom: MemFree %ld kB; starting " HOG " with vfork+execve", meminfo_kb("MemFree"));
	char *argv[] = {HOG, NULL};
	char *envp[] = {NULL};
	pid_t pid = vfork();
	if (pid == 0) {
		execve(HOG, argv, envp);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		say("oom: hog (pid %d) killed by signal %d (%s)", pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		say("oom: hog (pid %d) exited with status %d", pid, WEXITSTATUS(status));
	say("oom: init still running, MemFree back to %ld kB: the system stays up", meminfo_kb("MemFree"));
	power_off();
}
