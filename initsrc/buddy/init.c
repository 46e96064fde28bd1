/*
 * buddy: the kernel hands out physical pages in power-of-two groups (order 0 = 1 page, order 4 = 16
 * pages = 64 KiB), splitting bigger free blocks and merging a freed block with its free "buddy". The
 * free blocks of each order are in /proc/buddyinfo.
 *
 * NOMMU: an anonymous mmap is one physically contiguous allocation, so a 20 KiB mmap is an order-3
 * request (32 KiB); the spare pages are given back unless vm.nr_trim_pages is 0 (MmapCopy counts what
 * mmaps cost). Memory cut up by many small allocations, every other one freed, has plenty of free
 * pages but no free 16-page block: a 64 KiB mmap then fails (ENOMEM), with lots of memory free.
 * (Order 1-3 requests would not fail: the kernel would call the OOM killer. None is made here.)
 *
 * MMU: a mapping only needs single pages, wherever they are, so the same 64 KiB request succeeds from
 * scattered frames (/proc/self/pagemap tells which); and compaction, which moves pages behind their
 * virtual addresses, puts high-order free blocks back together.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>

#include "../lib/memstat.h"

#define PAGE 4096L
#define MAX_PAGES 40000
#define FLOOR_MIB 8 /* stop taking pages here: far above the watermarks, so no reclaim and no OOM killer */
#define BIG (64 * KIB)
#define MAX_BIG 4096

static char *pages[MAX_PAGES];
static char *bigs[MAX_BIG];

/* NOMMU: what an mmap of `bytes` costs with vm.nr_trim_pages = trim, read from MmapCopy. */
static void trim_demo(const char *trim)
{
	if (write_text("/proc/sys/vm/nr_trim_pages", trim) != 0) {
		say("buddy: cannot set vm.nr_trim_pages");
		return;
	}
	long before = meminfo_kb("MmapCopy");
	char *mapping = mmap(NULL, 20 * KIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mapping == MAP_FAILED) {
		say("buddy: mmap of 20 KiB failed: %s", strerror(errno));
		return;
	}
	long cost = meminfo_kb("MmapCopy") - before;
	say("buddy: nr_trim_pages=%s: an mmap of 20 KiB costs %ld KiB (MmapCopy %ld kB -> %ld kB)", trim, cost, before,
	    before + cost);
	munmap(mapping, 20 * KIB);
}

/*
 * Take single pages until MemFree is down to FLOOR_MIB; returns how many. NOMMU: one mmap per page (each
 * is its own physical allocation). MMU: one mapping, touched a page at a time (each touch allocates one
 * frame); `region` and `region_bytes` say what to unmap at the end.
 */
static char *region;
static long region_bytes;

static long take_pages(int nommu)
{
	if (!nommu) {
		region_bytes = (meminfo_kb("MemFree") - FLOOR_MIB * 1024) * KIB;
		region = region_bytes > 0 ? mmap(NULL, region_bytes, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
					  : MAP_FAILED;
		if (region == MAP_FAILED)
			return 0;
	}
	long count = 0;
	while (count < MAX_PAGES) {
		if (count % 256 == 0 && meminfo_kb("MemFree") < FLOOR_MIB * 1024)
			break;
		char *page = nommu ? mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
				   : (count + 1) * PAGE <= region_bytes ? region + count * PAGE : MAP_FAILED;
		if (page == MAP_FAILED)
			break;
		page[0] = 1; /* with an MMU the frame is allocated on first touch */
		pages[count++] = page;
	}
	return count;
}

/* MMU: into how many runs of consecutive physical frames do the pages of [start, start + bytes) fall? */
static int frame_runs(char *start, long bytes)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	int runs = 0;
	uint64_t previous = 0;
	for (long offset = 0; offset < bytes; offset += PAGE) {
		uint64_t entry = 0;
		if (pread(fd, &entry, sizeof entry, (uintptr_t)(start + offset) / PAGE * 8) != sizeof entry)
			break;
		uint64_t frame = entry & ((1ull << 55) - 1);
		if (offset == 0 || frame != previous + 1)
			runs++;
		previous = frame;
	}
	close(fd);
	return runs;
}

/* The chart's bars: free blocks of each order (0-10), summed over the zones of /proc/buddyinfo. */
static void chart(const char *when)
{
	static char text[4096];
	long blocks[11] = {0};
	if (read_text("/proc/buddyinfo", text, sizeof text) < 0)
		return;
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char *cursor = strstr(line, "zone");
		if (!cursor || (strchr(line, '\n') && cursor > strchr(line, '\n')))
			continue;
		for (cursor += 4; *cursor == ' '; cursor++)
			;
		while (*cursor && *cursor != ' ' && *cursor != '\n')
			cursor++; /* the zone's name */
		for (int order = 0; order < 11; order++) {
			char *end;
			long count = strtol(cursor, &end, 10);
			if (end == cursor)
				break;
			blocks[order] += count;
			cursor = end;
		}
	}
	for (int order = 0; order < 11; order++)
		data("buddy", when, "%d %ld", order, blocks[order]);
}

int main(void)
{
	mount_basics();
	int nommu = nommu_kernel();
	say("buddy: %s kernel", nommu ? "NOMMU" : "MMU");
	if (!nommu) {
		/* kcompactd compacts a fragmented node on its own every 500 ms (proactive compaction): it would race
		 * the fragmenting below and the compaction this demo does itself, so it is switched off first. */
		int error = write_text("/proc/sys/vm/compaction_proactiveness", "0");
		say("buddy: vm.compaction_proactiveness=0 (no background compaction): %s", error ? strerror(-error) : "set");
	}
	show_buddyinfo("buddy", "before");
	chart("before");
	long initial = buddy_blocks(4);
	if (nommu) {
		char original[16] = "1";
		read_text("/proc/sys/vm/nr_trim_pages", original, sizeof original);
		original[strcspn(original, "\n")] = '\0';
		trim_demo("0");
		trim_demo(original);
		say("buddy: 20 KiB is 5 pages: the buddy allocator rounds it up to order 3 (8 pages); trimming gives "
		    "the 3 spare pages back");
	}

	long taken = take_pages(nommu);
	say("buddy: took %ld single pages (%ld MiB): MemFree now %ld MiB", taken, taken * PAGE / MIB,
	    meminfo_kb("MemFree") / 1024);
	/* MMU: madvise(MADV_DONTNEED) frees a page's frame and keeps the mapping whole (munmap would split it). */
	for (long i = 1; i < taken; i += 2)
		if (nommu)
			munmap(pages[i], PAGE);
		else
			madvise(pages[i], PAGE, MADV_DONTNEED);
	long free_kb = meminfo_kb("MemFree");
	say("buddy: freed every other one: MemFree %ld MiB", free_kb / 1024);
	show_buddyinfo("buddy", "fragmented");
	chart("fragmented");
	long fragmented = buddy_blocks(4);
	say("buddy: order>=4 free blocks: %ld before, %ld now", initial, fragmented);

	if (nommu) {
		/* 64 KiB mmaps (order 4) take the high-order blocks that are left, until one fails. */
		int big = 0;
		int failed_errno = 0;
		while (big < MAX_BIG) {
			char *mapping = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (mapping == MAP_FAILED) {
				failed_errno = errno;
				break;
			}
			bigs[big++] = mapping;
		}
		long left = buddy_blocks(4);
		free_kb = meminfo_kb("MemFree");
		const char *why = failed_errno == ENOMEM ? "ENOMEM" : failed_errno ? strerror(failed_errno) : "none";
		say("buddy: %d mmaps of 64 KiB (order 4) took the high-order blocks left, then one failed: %s", big, why);
		say("buddy: order>=4 free blocks: %ld while MemFree %ld MiB", left, free_kb / 1024);
		say("buddy: a 64 KiB request fails although MemFree >= 32 MiB: %s",
		    yes_no(failed_errno == ENOMEM && left == 0 && free_kb >= 32 * 1024));
		while (big)
			munmap(bigs[--big], BIG);
	} else {
		char *mapping = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int ok = mapping != MAP_FAILED;
		if (ok)
			for (long offset = 0; offset < BIG; offset += PAGE)
				mapping[offset] = 1;
		int runs = ok ? frame_runs(mapping, BIG) : -1;
		say("buddy: a 64 KiB mmap: %s, its 16 pages in %d runs of consecutive frames", ok ? "touched" : "failed",
		    runs);
		say("buddy: the 64 KiB request succeeds from scattered frames (MemFree %ld MiB): %s", free_kb / 1024,
		    yes_no(ok && runs > 1));
		long before = buddy_blocks(4);
		int error = write_text("/proc/sys/vm/compact_memory", "1");
		long after = buddy_blocks(4);
		show_buddyinfo("buddy", "compacted");
		chart("compacted");
		say("buddy: compaction (vm.compact_memory%s): order>=4 free blocks %ld -> %ld", error ? " failed" : "",
		    before, after);
		say("buddy: compaction restored high-order blocks: %s", yes_no(!error && after > before));
		if (ok)
			munmap(mapping, BIG);
	}

	if (nommu)
		for (long i = 0; i < taken; i += 2)
			munmap(pages[i], PAGE);
	else
		munmap(region, region_bytes);
	show_buddyinfo("buddy", "after");
	long after = buddy_blocks(4);
	say("buddy: freed everything: order>=4 free blocks %ld (more than when fragmented: %s)", after,
	    yes_no(after > fragmented));
	power_off();
}
