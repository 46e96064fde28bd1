/*
 * hog: allocate and touch memory until the OOM killer ends me. First a few MiB at oom_score_adj 0, to show
 * what the kernel counts against a process (its RSS with an MMU; nothing without one), then oom_score_adj
 * 1000 ("kill me first") and on until killed. Chunks are 16 KiB: without an MMU each mmap() is one
 * physically contiguous block, and requests above 32 KiB fail rather than invoke the OOM killer.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "../lib/procfs.h"

#define CHUNK (16UL << 10)
#define FIRST_MIB 8

static long own_value(const char *path)
{
	char *text = read_file(path);
	return text ? strtol(text, NULL, 10) : -1;
}

static unsigned long hog(unsigned long limit_mib, const char *who)
{
	unsigned long allocated = 0;
	while (!limit_mib || allocated < limit_mib * MIB) {
		unsigned char *chunk = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (chunk == MAP_FAILED) {
			say("%s: mmap failed after %lu MiB: %s", who, allocated / MIB, strerror(errno));
			return allocated;
		}
		memset(chunk, 0x5a, CHUNK);
		allocated += CHUNK;
		if (allocated % (8 * MIB) == 0)
			say("%s: %lu MiB allocated and touched", who, allocated / MIB);
		if (limit_mib && allocated % MIB == 0) /* the first MiBs, at oom_score_adj 0: the chart's points */
			data("oom", "score", "%lu %ld", allocated / MIB, own_value("/proc/self/oom_score"));
	}
	return allocated;
}

int main(int argc, char **argv)
{
	const char *who = argc > 1 ? argv[1] : "hog";
	if (getpid() != 1)
		mount_fs("proc", "/proc");
	long before = own_value("/proc/self/oom_score");
	data("oom", "score", "0 %ld", before);
	hog(FIRST_MIB, who);
	long after = own_value("/proc/self/oom_score");
	if (getpid() == 1)
		say("%s: oom_score %ld before, %ld after %d MiB: init is never the OOM killer's candidate", who, before,
		    after, FIRST_MIB);
	else
		say("%s: oom_score %ld before, %ld after %d MiB: %s", who, before, after, FIRST_MIB,
		    after > before ? "my pages count against me" : "unchanged: the kernel counts no pages for me");
	int error = write_text("/proc/self/oom_score_adj", "1000");
	if (error < 0)
		say("%s: setting oom_score_adj failed: %s", who, strerror(-error));
	say("%s: oom_score_adj 1000, oom_score now %ld: allocating until the OOM killer ends me", who,
	    own_value("/proc/self/oom_score"));
	hog(0, who);
	say("%s: still alive: no more memory, and no OOM kill", who);
	return 1;
}
