/*
 * pagetables: what the page tables do for one process, read from the kernel's own reports.
 * With an MMU: the translation mode (/proc/cpuinfo), pagemap showing an untouched page absent, read
 * faults mapping the shared zero page and write faults a frame of its own, PageTables growing by one
 * page-table page per 2 MiB touched, and mprotect() turning a write into SIGSEGV. Without one: no
 * translation, no pagemap, no page tables, mprotect() not implemented, and the program's own address
 * is a physical one. The TLB cannot be watched from inside QEMU, and the program says so.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>

#include "../lib/procfs.h"

#define PAGE 4096UL
#define PT_SPAN (2UL << 20) /* one last-level page-table page maps 512 pages: 2 MiB */
#define PT_TOUCHES 64

static sigjmp_buf after_fault;
static volatile void *fault_address;
static volatile int fault_code;

static void on_segv(int signal, siginfo_t *info, void *context)
{
	(void)signal;
	(void)context;
	fault_address = info->si_addr;
	fault_code = info->si_code;
	siglongjmp(after_fault, 1);
}

static char mode[8] = "none"; /* the translation mode's name: sv39, sv48, sv57 (the `vaddr` chart's series) */

/* Prints the translation mode; returns whether there is one (an MMU kernel). */
static int translation_mode(void)
{
	char *text = read_file("/proc/cpuinfo");
	char *line = text ? strstr(text, "\nmmu") : NULL;
	if (!line) {
		say("pagetables: /proc/cpuinfo has no mmu line");
		return 0;
	}
	char *value = strchr(line, ':');
	char *end = value ? strchr(value, '\n') : NULL;
	if (end)
		*end = '\0';
	say("pagetables: /proc/cpuinfo mmu: %s", value ? value + 2 : "?");
	if (value)
		snprintf(mode, sizeof mode, "%s", value + 2);
	return value && strcmp(value + 2, "none") != 0;
}

/* The pagemap entry of a virtual address: bit 63 present, bits 0-54 the frame number (root sees it). */
static int pagemap_entry(int fd, const volatile void *address, uint64_t *entry)
{
	off_t offset = (off_t)((uintptr_t)address / PAGE * sizeof *entry);
	return pread(fd, entry, sizeof *entry, offset) == (ssize_t)sizeof *entry ? 0 : -1;
}

#define PRESENT(entry) (((entry) >> 63) & 1)
#define FRAME(entry) ((entry) & ((1ULL << 55) - 1))

/* The `vaddr` chart: a virtual address split into its VPN fields (9 bits each, highest first) and offset. */
static void address_fields(unsigned long address)
{
	int levels = strcmp(mode, "sv57") == 0 ? 5 : strcmp(mode, "sv48") == 0 ? 4 : 3;
	char field[8];
	for (int level = levels - 1; level >= 0; level--) {
		snprintf(field, sizeof field, "vpn%d", level);
		data("vaddr", mode, "%s %lu", field, (address >> (12 + 9 * level)) & 511);
	}
	data("vaddr", mode, "offset %lu", address & 4095);
}

static void pagemap(volatile unsigned char *pages)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0) {
		say("pagetables: pagemap: none (%s): no page tables to report", strerror(errno));
		return;
	}
	uint64_t untouched, read_a, read_b, written_a, written_b;
	pagemap_entry(fd, &pages[0], &untouched);
	say("pagetables: pagemap: untouched page: %s", PRESENT(untouched) ? "present" : "not present");
	(void)pages[1 * PAGE];
	(void)pages[2 * PAGE];
	pagemap_entry(fd, &pages[1 * PAGE], &read_a);
	pagemap_entry(fd, &pages[2 * PAGE], &read_b);
	say("pagetables: pagemap: after a read, pages 1 and 2 are in frames 0x%llx and 0x%llx",
	    (unsigned long long)FRAME(read_a), (unsigned long long)FRAME(read_b));
	int zero_page = PRESENT(read_a) && PRESENT(read_b) && FRAME(read_a) == FRAME(read_b) && FRAME(read_a);
	say("pagetables: pagemap: read-only touches share one frame (the zero page): %s", zero_page ? "yes" : "no");
	pages[1 * PAGE] = 1;
	pages[3 * PAGE] = 1;
	pagemap_entry(fd, &pages[1 * PAGE], &written_a);
	pagemap_entry(fd, &pages[3 * PAGE], &written_b);
	say("pagetables: pagemap: after a write, pages 1 and 3 are in frames 0x%llx and 0x%llx",
	    (unsigned long long)FRAME(written_a), (unsigned long long)FRAME(written_b));
	data("frame", "pfn", "page1-read 0x%llx", (unsigned long long)FRAME(read_a));
	data("frame", "pfn", "page2-read 0x%llx", (unsigned long long)FRAME(read_b));
	data("frame", "pfn", "page1-written 0x%llx", (unsigned long long)FRAME(written_a));
	data("frame", "pfn", "page3-written 0x%llx", (unsigned long long)FRAME(written_b));
	address_fields((unsigned long)&pages[PAGE]);
	int own = FRAME(written_a) && FRAME(written_b) && FRAME(written_a) != FRAME(written_b) &&
		  FRAME(written_a) != FRAME(read_a);
	say("pagetables: pagemap: written pages have frames of their own: %s", own ? "yes" : "no");
	unsigned long physical = (unsigned long)(FRAME(written_a) * PAGE), low, high;
	say("pagetables: virtual 0x%lx is physical 0x%lx, %s System RAM", (unsigned long)&pages[PAGE], physical,
	    in_system_ram(physical, &low, &high) ? "inside" : "outside");
	close(fd);
}

static void page_table_growth(void)
{
	long before = meminfo_kb("PageTables");
	unsigned char *area = mmap(NULL, PT_TOUCHES * PT_SPAN, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED) {
		say("pagetables: mmap of %lu MiB failed: %s", PT_TOUCHES * PT_SPAN >> 20, strerror(errno));
		return;
	}
	data("pagetables", "kb", "0 %ld", before);
	for (unsigned long i = 0; i < PT_TOUCHES; i++) {
		area[i * PT_SPAN] = 1;
		if ((i + 1) % 8 == 0)
			data("pagetables", "kb", "%lu %ld", i + 1, meminfo_kb("PageTables"));
	}
	long after = meminfo_kb("PageTables");
	say("pagetables: PageTables: %ld kB before, %ld kB after touching %d pages 2 MiB apart", before, after,
	    PT_TOUCHES);
	say("pagetables: PageTables grew by at least %d kB: %s", PT_TOUCHES * 4 / 2,
	    after - before >= PT_TOUCHES * 4 / 2 ? "yes" : "no");
	munmap(area, PT_TOUCHES * PT_SPAN);
}

static void protection(volatile unsigned char *page)
{
	if (mprotect((void *)page, PAGE, PROT_READ) != 0) {
		say("pagetables: mprotect(PROT_READ): %s (%s): no page-table entry to change", strerror(errno),
		    errno == ENOSYS ? "ENOSYS" : "error");
	} else {
		say("pagetables: mprotect(PROT_READ) = 0");
	}
	struct sigaction action = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
	sigaction(SIGSEGV, &action, NULL);
	if (sigsetjmp(after_fault, 1) == 0) {
		page[0] = 2;
		say("pagetables: write after mprotect: went through: nothing can forbid it without an MMU");
	} else {
		say("pagetables: write after mprotect(PROT_READ): SIGSEGV (%s) at 0x%lx",
		    fault_code == SEGV_ACCERR ? "SEGV_ACCERR" : "another code", (unsigned long)fault_address);
	}
}

static int data_word = 42;

/* A big number as a student reads it aloud: "about 600 million". */
static void in_words(unsigned long n, char *words, size_t size)
{
	static const struct {
		unsigned long unit;
		const char *name;
	} scales[] = {{1000000000000UL, "trillion"}, {1000000000UL, "billion"}, {1000000UL, "million"}, {1000UL, "thousand"}};
	for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++)
		if (n >= scales[i].unit) {
			snprintf(words, size, "about %lu %s", (n + scales[i].unit / 2) / scales[i].unit, scales[i].name);
			return;
		}
	snprintf(words, size, "%lu", n);
}

/*
 * "What's bigger, physical or virtual memory?": each process's user address space (the lower half of the
 * translation's range: 2^56 bytes under Sv57, 2^38 under Sv39) against MemTotal. Without an MMU there is no
 * virtual address space: a program's addresses are RAM's, so all there is to address is MemTotal.
 */
static void sizes(int translated)
{
	long total_kb = meminfo_kb("MemTotal");
	say("pagetables: physical: MemTotal %ld MiB", total_kb / 1024);
	if (!translated || total_kb <= 0) {
		say("pagetables: virtual is physical: MemTotal %ld MiB is all a program can address", total_kb / 1024);
		return;
	}
	static const struct {
		const char *name, *mode, *size;
		int bits;
	} modes[] = {{"Sv57", "sv57", "64 PiB", 56}, {"Sv39", "sv39", "256 GiB", 38}};
	int bigger = 1;
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		unsigned long times = (1UL << modes[i].bits) / ((unsigned long)total_kb * 1024);
		char words[48];
		in_words(times, words, sizeof words);
		say("pagetables: virtual under %s%s: %s per process (2^%d bytes): virtual is %s times physical",
		    modes[i].name, strcmp(mode, modes[i].mode) == 0 ? " (this boot)" : "", modes[i].size, modes[i].bits,
		    words);
		bigger = bigger && times > 1;
	}
	say("pagetables: virtual is bigger than physical under Sv57 and Sv39: %s", yes_no(bigger));
}

int main(void)
{
	mount_fs("proc", "/proc");
	int translated = translation_mode();
	volatile unsigned char *pages =
		mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pages == MAP_FAILED) {
		say("pagetables: mmap failed: %s", strerror(errno));
		power_off();
	}
	pagemap(pages);
	if (translated)
		page_table_growth();
	else { /* and a 128 MiB mapping would have to be 128 MiB of contiguous RAM */
		say("pagetables: no page tables to grow without an MMU");
		data("pagetables", "kb", "0 none");
	}
	sizes(translated);
	say("pagetables: PageTables now: %ld kB", meminfo_kb("PageTables"));
	protection(pages);
	unsigned long low, high, own = (unsigned long)&data_word;
	if (in_system_ram(own, &low, &high))
		say("pagetables: my data at 0x%lx lies inside System RAM %lx-%lx: virtual = physical", own, low, high);
	else
		say("pagetables: my data at 0x%lx lies outside System RAM: a virtual address", own);
	say("pagetables: the TLB: not observable from inside QEMU (its software TLB is flushed wholesale)");
	power_off();
}
