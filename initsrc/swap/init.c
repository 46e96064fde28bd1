/*
 * swap: "what's bigger, physical or virtual memory?" Virtual: so the kernel must be able to take memory
 * back. Two ways, shown here:
 *
 *  - page-cache reclaim (both kernels): reading a RAM disk (/dev/ram0, brd) fills the page cache
 *    (Buffers); a memory hog then makes the kernel drop those clean pages, which it can reread any time.
 *  - swap (MMU only): anonymous memory has no file to reread, so it is written to a swap device (here
 *    zram, a compressed RAM block device) and its page-table entry marked not present; touching it again
 *    faults it back in. A child touches more memory than is free, one value per page, and checks them all.
 *
 * Without an MMU there is no swap at all: swapon() is ENOSYS and SwapTotal is 0 kB, because a program's
 * pointers are physical addresses; no page-table entry can be made to fault, so no page can ever leave.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/wait.h>

#include "../lib/memstat.h"

#define PAGE 4096L
#define HOG_CHUNK (16 * KIB) /* NOMMU: one order-2 allocation per mmap, reclaimable pressure, no OOM */
#define MAX_CHUNKS 16384

static void *chunks[MAX_CHUNKS];
/* The `swap` chart's x: one step per look at MemFree and SwapFree, counted in shared memory (main maps it) so that
 * the MMU child's points go on where the parent's stopped, and the parent's after the child's. */
static int first_step, *step = &first_step;

/* One point of each of the `swap` chart's lines (kB). */
static void chart(void)
{
	data("swap", "memfree", "%d %ld", *step, meminfo_kb("MemFree"));
	data("swap", "swapfree", "%d %ld", (*step)++, meminfo_kb("SwapFree"));
}

/* The file pages on the kernel's two LRU lists (kB): a page read once goes on the inactive one; read again,
 * it moves to the active one; reclaim frees pages from the inactive list's far end. */
struct lru {
	long active, inactive;
};

static struct lru file_lru(void)
{
	return (struct lru){meminfo_kb("Active(file)"), meminfo_kb("Inactive(file)")};
}

static void show_lru(const char *when, struct lru lru)
{
	say("swap: LRU: %s: Active(file) %ld kB, Inactive(file) %ld kB", when, lru.active, lru.inactive);
}

static void show_free(const char *when)
{
	say("swap: %s: MemTotal %ld MiB, MemFree %ld MiB, Buffers %ld MiB, Cached %ld MiB, SwapTotal %ld MiB, "
	    "SwapFree %ld MiB",
	    when, meminfo_kb("MemTotal") / 1024, meminfo_kb("MemFree") / 1024, meminfo_kb("Buffers") / 1024,
	    meminfo_kb("Cached") / 1024, meminfo_kb("SwapTotal") / 1024, meminfo_kb("SwapFree") / 1024);
	chart();
}

/*
 * Take memory a little at a time until Buffers has fallen to half of `filled` (the kernel reclaimed the
 * page cache) or the hog holds as much as was free plus the cache (it never pushes further: nothing
 * else is reclaimable here, and the OOM killer cannot kill init). Returns the KiB it took.
 */
static long hog_until_reclaimed(long filled, int nommu)
{
	long limit = (meminfo_kb("MemFree") + filled) * KIB, taken = 0;
	int count = 0;
	char *region = NULL;
	if (!nommu) {
		region = mmap(NULL, limit, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (region == MAP_FAILED)
			return 0;
	}
	/* /proc/meminfo is read once every 256 KiB: generating it is slow under emulation. */
	while (taken + HOG_CHUNK <= limit && (taken % (MIB / 4) || meminfo_kb("Buffers") > filled / 2)) {
		if (taken % MIB == 0)
			chart();
		char *chunk = region ? region + taken : NULL;
		if (nommu) {
			if (count == MAX_CHUNKS)
				break;
			chunk = mmap(NULL, HOG_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (chunk == MAP_FAILED)
				break;
			chunks[count++] = chunk;
		}
		for (long offset = 0; offset < HOG_CHUNK; offset += PAGE)
			chunk[offset] = 1;
		taken += HOG_CHUNK;
	}
	if (nommu)
		while (count)
			munmap(chunks[--count], HOG_CHUNK);
	else
		munmap(region, limit);
	return taken / KIB;
}

static void page_cache_reclaim(int nommu)
{
	static char buffer[64 * 1024];
	long before = meminfo_kb("Buffers"), total = 0;
	int fd = open("/dev/ram0", O_RDONLY);
	if (fd < 0) {
		say("swap: page cache: cannot open /dev/ram0: %s", strerror(errno));
		return;
	}
	ssize_t got;
	struct lru unread = file_lru();
	while (total < 8 * MIB && (got = read(fd, buffer, sizeof buffer)) > 0)
		total += got;
	struct lru once = file_lru();
	/* Kept open: the last close of a block device drops its page cache. */
	long filled = meminfo_kb("Buffers");
	say("swap: page cache: read %ld MiB of the RAM disk /dev/ram0: Buffers %ld MiB -> %ld MiB", total / MIB,
	    before / 1024, filled / 1024);
	say("swap: page cache: Buffers grew by >= 4 MiB: %s", yes_no(filled - before >= 4 * 1024));
	/* The first quarter again: its pages are touched a second time. (A quarter: the kernel keeps the file
	 * lists about equal in a small machine and moves active pages to the inactive list, to be reclaimed in
	 * turn, once the inactive one is the smaller: with three times as many inactive pages, the hog below is
	 * done before that.) */
	long again = 0;
	lseek(fd, 0, SEEK_SET);
	while (again < total / 4 && (got = read(fd, buffer, sizeof buffer)) > 0)
		again += got;
	struct lru twice = file_lru();
	show_lru("before reading", unread);
	show_lru("after reading 8 MiB once", once);
	show_lru("after reading its first 2 MiB again", twice);
	say("swap: LRU: pages read once go on the inactive list (Inactive(file) grew by >= 4 MiB): %s",
	    yes_no(once.inactive - unread.inactive >= 4 * 1024));
	say("swap: LRU: pages read twice become active (Active(file) grew by >= 1 MiB on the second read): %s",
	    yes_no(twice.active - once.active >= 1024));
	/*
	 * Watermark boosting (vm.watermark_boost_factor) raises every watermark by up to 4 MiB after a
	 * fragmenting allocation and has kswapd reclaim that much more: it can drop the whole page cache
	 * between two of the hog's checks, and then, with nothing left to reclaim and free memory under the
	 * boosted minimum, the next allocation finds no process it may kill (init) and the kernel panics
	 * ("System is deadlocked on memory": once in a few hundred NOMMU boots on a busy host). The demo
	 * shows plain reclaim, so it turns boosting off.
	 */
	if (write_text("/proc/sys/vm/watermark_boost_factor", "0") != 0)
		say("swap: cannot set vm.watermark_boost_factor: %s", strerror(errno));
	long taken = hog_until_reclaimed(filled, nommu);
	long after = meminfo_kb("Buffers");
	struct lru reclaimed = file_lru();
	show_lru("after the hog", reclaimed);
	long inactive_fell = twice.inactive - reclaimed.inactive, active_fell = twice.active - reclaimed.active;
	say("swap: LRU: Inactive(file) fell by %ld kB, Active(file) by %ld kB", inactive_fell, active_fell);
	say("swap: LRU: reclaim takes the inactive pages first (Inactive(file) fell by >= 2 MiB, Active(file) by "
	    "less than half that): %s",
	    yes_no(inactive_fell >= 2 * 1024 && active_fell < inactive_fell / 2));
	say("swap: page cache: a hog took %ld MiB; Buffers now %ld MiB", taken / 1024, after / 1024);
	say("swap: page cache: the hog made the kernel drop it (Buffers fell by half): %s",
	    yes_no(after <= filled / 2 && filled - before >= 4 * 1024));
	close(fd);
}

/* What mkswap writes: version 1, the last usable page, and the magic at the end of the first page. */
static int write_swap_header(const char *device, long bytes)
{
	static uint32_t header[PAGE / 4];
	memset(header, 0, sizeof header);
	header[1024 / 4] = 1;                      /* version */
	header[1024 / 4 + 1] = bytes / PAGE - 1;   /* last_page */
	memcpy((char *)header + PAGE - 10, "SWAPSPACE2", 10);
	int fd = open(device, O_WRONLY);
	if (fd < 0)
		return -errno;
	int error = write(fd, header, sizeof header) == (ssize_t)sizeof header ? 0 : -errno;
	fsync(fd);
	close(fd);
	return error;
}

static uint64_t value_of(long page)
{
	return (uint64_t)page * 0x9E3779B97F4A7C15ull ^ 0x6d6d756c6162ull;
}

/* The child: touch more than is free, one value per page; check every value while it still holds them. */
static int touch_and_verify(long extra_mib)
{
	long free_kb = meminfo_kb("MemFree");
	long pages = (free_kb * KIB + extra_mib * MIB) / PAGE;
	uint64_t *memory = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (memory == MAP_FAILED) {
		say("swap: child: mmap of %ld MiB failed: %s", pages * PAGE / MIB, strerror(errno));
		return 1;
	}
	for (long page = 0; page < pages; page++) {
		memory[page * (PAGE / 8)] = value_of(page);
		if (page % (4 * MIB / PAGE) == 0)
			chart();
	}
	long swap_total = meminfo_kb("SwapTotal"), swap_used = swap_total - meminfo_kb("SwapFree");
	say("swap: child: touched %ld MiB, one value per page, with %ld MiB free: swap used %ld MiB", pages * PAGE / MIB,
	    free_kb / 1024, swap_used / 1024);
	show_free("while the child holds it");
	say("swap: swap in use while the child holds its memory (SwapFree < SwapTotal): %s", yes_no(swap_used > 0));
	/* Newest first: the pages still in RAM, then those swapped out first (each swapped back in). */
	long wrong = 0;
	for (long page = pages - 1; page >= 0; page--)
		wrong += memory[page * (PAGE / 8)] != value_of(page);
	say("swap: child: read back %ld values, %ld wrong", pages, wrong);
	say("swap: every value read back intact: %s", yes_no(wrong == 0));
	return wrong != 0;
}

int main(void)
{
	mount_basics();
	int *shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared != MAP_FAILED)
		step = shared;
	int nommu = nommu_kernel();
	say("swap: %s kernel", nommu ? "NOMMU" : "MMU");
	show_free("before");
	page_cache_reclaim(nommu);

	/* zram when the kernel has it (MMU); otherwise the RAM disk, to ask for swap anyway. */
	const char *device = "/dev/ram0";
	long bytes = 16 * MIB;
	if (access("/sys/block/zram0", F_OK) == 0) {
		int error = write_text("/sys/block/zram0/disksize", "64M");
		if (error)
			say("swap: zram0 disksize: %s", strerror(-error));
		device = "/dev/zram0";
		bytes = 64 * MIB;
	}
	int error = write_swap_header(device, bytes);
	if (error)
		say("swap: writing a swap header to %s: %s", device, strerror(-error));
	if (swapon(device, 0) != 0) {
		int saved = errno;
		say("swap: swapon(%s) = %d (%s)", device, -saved, saved == ENOSYS ? "ENOSYS" : strerror(saved));
		say("swap: /proc/meminfo: SwapTotal: %ld kB", meminfo_kb("SwapTotal"));
		if (nommu)
			say("swap: no swap without an MMU: a program's pointers are physical addresses, no page-table entry "
			    "can be made to fault, so a page can never leave RAM and come back elsewhere");
		power_off();
	}
	say("swap: swapon(%s) = 0: %ld MiB of compressed swap", device, meminfo_kb("SwapTotal") / 1024);
	show_free("before the child");
	pid_t child = fork();
	if (child == 0)
		_exit(touch_and_verify(8));
	int status = 0;
	waitpid(child, &status, 0);
	say("swap: child exited with status %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	show_free("after");
	power_off();
}
