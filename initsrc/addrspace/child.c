/*
 * addrspace, child: a separate program told the parent's address. It writes there first through a
 * syscall (read() from a pipe), then with a plain store. On NOMMU the address is the parent's real
 * memory and both succeed; with an MMU it is unmapped here: the syscall gets EFAULT, the store SIGSEGV.
 * (Never hand a bad pointer to a syscall on NOMMU: the kernel copies with plain memcpy and panics.
 * The address here is valid there, which is the point of the demo.)
 */
#include <errno.h>
#include <stdlib.h>

#include "../lib/procfs.h"

static int initialised = 1; /* names this program's data in /proc/self/maps */

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	volatile unsigned long *target = (unsigned long *)strtoul(argv[1], NULL, 16);
	say("addrspace: child pid %d targets 0x%lx", getpid(), (unsigned long)target);
	maps_data("child", (const void *)main, &initialised);
	data("maps", "child.target", "0x%lx 0x%lx", (unsigned long)target, (unsigned long)target);

	int pipe_fds[2];
	unsigned long value = 0x2222;
	if (pipe(pipe_fds) != 0 || write(pipe_fds[1], &value, sizeof value) != sizeof value)
		return 3;
	long result = read(pipe_fds[0], (void *)target, sizeof value);
	say("addrspace: child: read() into that address returned %ld", result < 0 ? -errno : result);
	if (result < 0)
		say("addrspace: child: (%s: not mapped in my address space)", strerror(errno));

	say("addrspace: child: storing 0x3333 there directly");
	*target = 0x3333;
	say("addrspace: child: direct store done");
	return 0;
}
