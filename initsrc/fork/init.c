/*
 * fork: a child made by clone() without CLONE_VM (what fork() does). With an MMU the child gets a
 * copy-on-write copy of the parent's memory, so its write stays invisible to the parent. Without one
 * there are no page tables to share copy-on-write: the kernel hands the child the same memory, uncopied
 * (riscv has no fork syscall; Linux's own fork() returns -EINVAL on NOMMU for this reason).
 *
 * riscv defines no fork system call at all (arch/riscv/include/asm/unistd.h sets __ARCH_WANT_SYS_CLONE,
 * not __ARCH_WANT_SYS_FORK), so musl's fork() is clone(SIGCHLD, stack 0): the child goes on with the
 * caller's stack pointer. Both kernels accept that call. With an MMU the stack is a copy-on-write copy;
 * without one it is the very same stack, used by both at once, so the program does that call only with a
 * child that touches no memory at all (it exits at once, in registers) and never calls fork() there.
 * Both processes print their /proc/self/maps as chart points (on NOMMU the child has no mappings of
 * its own: the kernel copies none of the parent's, it shares the memory).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../lib/procfs.h"

int main(void); /* its address names this program's text in /proc/self/maps */
static volatile char shared = 'A';
static char child_stack[16384] __attribute__((aligned(16)));

static int child(void *unused)
{
	(void)unused;
	say("fork: child writing 'B' into its byte");
	if (maps_data("child", (const void *)main, (const void *)&shared) == 0)
		say("fork: child: /proc/self/maps lists no mappings of my own: I run in the parent's memory");
	data("maps", "child.target", "0x%lx 0x%lx", (unsigned long)&shared, (unsigned long)&shared);
	shared = 'B';
	return 0;
}

/* clone(SIGCHLD, stack 0), the call musl's fork() makes; the child exits at once without touching memory
 * (on NOMMU it shares this very stack with the parent). The child's pid, or -errno. */
static long clone_as_fork_does(void)
{
	register long a0 __asm__("a0") = SIGCHLD;
	register long a1 __asm__("a1") = 0;
	register long a2 __asm__("a2") = 0;
	register long a3 __asm__("a3") = 0;
	register long a4 __asm__("a4") = 0;
	register long a7 __asm__("a7") = SYS_clone;
	__asm__ volatile("ecall\n\t"
			 "bnez a0, 1f\n\t"
			 "li a7, %[exit]\n\t"
			 "ecall\n"
			 "1:"
			 : "+r"(a0)
			 : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a7), [exit] "i"(SYS_exit)
			 : "memory");
	return a0;
}

int main(void)
{
	mount_fs("proc", "/proc");
	say("fork: riscv defines no fork system call: only clone (__ARCH_WANT_SYS_CLONE, not __ARCH_WANT_SYS_FORK)");
	say("fork: parent byte before = %c", shared);
	maps_data("parent", (const void *)main, (const void *)&shared);
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

	long probe = clone_as_fork_does();
	if (probe > 0) {
		waitpid((pid_t)probe, NULL, 0);
		say("fork: clone(SIGCHLD) on the caller's own stack, what libc's fork() turns into: returned a child pid");
	} else {
		say("fork: clone(SIGCHLD) on the caller's own stack, what libc's fork() turns into: %ld (%s)", probe,
		    strerror((int)-probe));
	}
	if (nommu_kernel()) {
		say("fork: libc's fork() = clone(SIGCHLD, stack 0): not refused (no ENOSYS), but without an MMU the child "
		    "runs on my very stack while I do: use vfork(), or clone() with a stack of its own");
	} else {
		pid_t forked = fork();
		if (forked == 0)
			_exit(0);
		if (forked > 0)
			waitpid(forked, NULL, 0);
		say("fork: libc's fork() = clone(SIGCHLD, stack 0): %s",
		    forked > 0 ? "returned a child pid; the child runs on a copy-on-write copy of my stack"
			       : strerror(errno));
	}
	power_off();
}
