/*
 * protect: is there address protection baked into RISC-V? Yes, PMP (physical memory protection): up to 16
 * or 64 regions, each with R/W/X bits, checked for every access below M-mode. A user program tries it out: it
 * finds a kernel object through /proc/kallsyms (init_uts_ns, whose `release` field uname() and /proc/version
 * print), and a child stores a new string into that field.
 *
 * NOMMU (M-mode Linux, no firmware below it): arch/riscv/kernel/head.S sets up one PMP entry "to permit access to
 * all of memory" (pmpaddr0 = -1, pmpcfg0 = NAPOT|R|W|X) and there are no page tables: the store goes through and
 * uname() returns the new string. MMU (S-mode Linux under OpenSBI): the kernel's pages lack the U bit, so the store
 * is a page fault and the child dies of SIGSEGV; the console's "unhandled signal" line names the kernel address
 * (the verdict resolves it in System.map). OpenSBI keeps its own memory from S-mode with a PMP entry of its own.
 *
 * The store is done by a child (clone without CLONE_VM, its own stack, as the fork demo) so that init survives
 * on both kernels to report. /proc/kallsyms lists data symbols only with CONFIG_KALLSYMS_ALL=y.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "../lib/memstat.h"

/* struct uts_namespace starts with struct new_utsname: sysname[65], nodename[65], release[65], ... */
#define RELEASE_OFFSET (2 * 65)
#define SYMBOL "init_uts_ns"

static const char NEW_RELEASE[] = "owned-by-user";
static volatile char *target;
static char child_stack[16384] __attribute__((aligned(16)));

/*
 * The address of a symbol in /proc/kallsyms ("ffffffff8029f128 D init_uts_ns"), read line by line (the file is
 * larger than any buffer worth keeping); 0 if absent, or listed as 0 (no KALLSYMS_ALL, or a reader without
 * CAP_SYSLOG).
 */
static unsigned long kallsyms_address(const char *symbol)
{
	int fd = open("/proc/kallsyms", O_RDONLY);
	if (fd < 0)
		return 0;
	static char buffer[8192];
	size_t kept = 0;
	unsigned long found = 0;
	ssize_t got;
	while (!found && (got = read(fd, buffer + kept, sizeof buffer - 1 - kept)) > 0) {
		kept += (size_t)got;
		buffer[kept] = '\0';
		char *line = buffer, *newline;
		while ((newline = strchr(line, '\n'))) {
			*newline = '\0';
			char *name = strrchr(line, ' ');
			if (name && strcmp(name + 1, symbol) == 0) {
				found = strtoul(line, NULL, 16);
				break;
			}
			line = newline + 1;
		}
		kept = strlen(line);
		memmove(buffer, line, kept);
	}
	close(fd);
	return found;
}

/* The first time: say what the fault was, as the program sees it, then let the store fault again with the
 * default action, so that the kernel reports it ("unhandled signal") and the child dies of SIGSEGV. */
static void on_segv(int signal_number, siginfo_t *info, void *context)
{
	(void)context;
	say("protect: child: signal %d (%s) at %p: the store was refused", signal_number,
	    info->si_code == SEGV_MAPERR ? "SEGV_MAPERR" : info->si_code == SEGV_ACCERR ? "SEGV_ACCERR" : "SIGSEGV",
	    info->si_addr);
	drain_console(); /* this line out before the kernel's report of the second fault, never cut by it */
	signal(SIGSEGV, SIG_DFL);
}

static int child(void *unused)
{
	(void)unused;
	struct sigaction action = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
	sigaction(SIGSEGV, &action, NULL);
	say("protect: child: storing \"%s\" at %p (" SYMBOL " + %d, its release field)", NEW_RELEASE, (void *)target,
	    RELEASE_OFFSET);
	for (size_t i = 0; i < sizeof NEW_RELEASE; i++)
		target[i] = NEW_RELEASE[i];
	say("protect: child: the store went through");
	return 0;
}

/* The first line of /proc/version, which the kernel prints from the same field. */
static void show_proc_version(const char *when)
{
	char text[512];
	if (read_text("/proc/version", text, sizeof text) < 0)
		return;
	text[strcspn(text, "\n")] = '\0';
	text[120] = '\0';
	say("protect: /proc/version %s: %s", when, text);
}

int main(void)
{
	mount_basics();
	int nommu = nommu_kernel();
	unsigned long address = kallsyms_address(SYMBOL);
	say("protect: %s kernel; /proc/kallsyms: " SYMBOL " at %#lx", nommu ? "NOMMU" : "MMU", address);
	if (address == 0) {
		say("protect: no address for " SYMBOL ": kallsyms lists data symbols only with CONFIG_KALLSYMS_ALL=y");
		power_off();
	}
	struct utsname before, after;
	uname(&before);
	say("protect: uname() release before: %s", before.release);
	show_proc_version("before");

	target = (volatile char *)(uintptr_t)(address + RELEASE_OFFSET);
	pid_t pid = clone(child, child_stack + sizeof child_stack, SIGCHLD, NULL);
	if (pid < 0) {
		say("protect: clone failed: %s", strerror(errno));
		power_off();
	}
	int status = 0;
	waitpid(pid, &status, 0);
	int segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
	if (WIFSIGNALED(status))
		say("protect: parent: child killed by signal %d%s", WTERMSIG(status), segv ? " (SIGSEGV)" : "");
	else
		say("protect: parent: child exited with status %d", WEXITSTATUS(status));

	uname(&after);
	say("protect: uname() release after: %s", after.release);
	show_proc_version("after");
	int changed = strcmp(before.release, after.release) != 0;
	say("protect: a user store changed the kernel's own data: %s", yes_no(changed));
	say("protect: the store killed the child with SIGSEGV: %s", yes_no(segv));
	if (changed)
		say("protect: why: no page tables, and M-mode Linux sets one PMP entry (pmpaddr0 = -1, pmpcfg0 = "
		    "NAPOT|R|W|X) that allows every access to all of memory");
	if (segv) {
		say("protect: why: the kernel's pages lack the U bit, so the CPU faults on a user-mode store; the process "
		    "has no mapping there (SEGV_MAPERR), and the kernel's log above names the address");
		say("protect: and below the kernel, OpenSBI's own memory is closed to S-mode by a PMP entry of its own");
	}
	say("protect: not shown: PMP has few entries (16 or 64) and Linux does not switch them per process: it fences "
	    "firmware off from the kernel, it does not isolate processes from each other");
	power_off();
}
