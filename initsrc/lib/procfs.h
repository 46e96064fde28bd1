/*
 * Reading the kernel's own reports (/proc, /sys) from an init program: mount them one by one, read a file
 * whole into a static buffer, and tell whether an address lies inside System RAM (/proc/iomem); the rest
 * (meminfo_kb, write_text) is memstat.h's.
 * The memory demos print what the kernel says rather than what the program assumes.
 */
#ifndef MMULAB_PROCFS_H
#define MMULAB_PROCFS_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memstat.h" /* read_text, write_text, meminfo_kb */
#include "mmulab.h"

/* Mount a file system at a directory made first; errors are reported, never fatal. */
static inline void mount_fs(const char *type, const char *where)
{
	mkdir(where, 0755);
	if (mount(type, where, type, 0, NULL) != 0 && errno != EBUSY)
		say("mount %s on %s failed: %s", type, where, strerror(errno));
}

/* The whole of a (small) file into a static buffer, NUL-terminated; NULL with errno set if unreadable. */
static inline char *read_file(const char *path)
{
	static char buffer[64 * 1024];
	long length = read_text(path, buffer, sizeof buffer);
	if (length < 0) {
		errno = (int)-length;
		return NULL;
	}
	return buffer;
}

/* Whether a physical address lies in one of /proc/iomem's top-level "System RAM" ranges. */
static inline int in_system_ram(unsigned long address, unsigned long *start, unsigned long *end)
{
	char *text = read_file("/proc/iomem");
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char *dash;
		unsigned long low = strtoul(line, &dash, 16);
		if (*dash != '-')
			continue;
		unsigned long high = strtoul(dash + 1, NULL, 16);
		char *newline = strchr(line, '\n');
		char *name = strstr(line, " : System RAM");
		if (name && (!newline || name < newline) && line[0] != ' ' && low <= address && address <= high) {
			*start = low;
			*end = high;
			return 1;
		}
	}
	return 0;
}

/* Whether `needle` occurs in the line that starts at `line` (before its newline). */
static inline int in_line(const char *line, const char *needle)
{
	const char *found = strstr(line, needle), *newline = strchr(line, '\n');
	return found && (!newline || found < newline);
}

/*
 * Where a /proc/self/maps line's address range belongs: the program's text or data, heap, stack or an mmap;
 * NULL for the kernel's [vdso] and [vvar]. `image_end` is where the file mapping just above ended (0 if none):
 * the anonymous writable part right after it is the program's bss.
 */
static inline const char *maps_region(const char *line, unsigned long low, unsigned long high, const char *perms,
				      unsigned long code, unsigned long variable, unsigned long image_end)
{
	int file = in_line(line, "/");
	if (in_line(line, "[stack]"))
		return "stack";
	if (in_line(line, "[heap]"))
		return "heap";
	if (in_line(line, "[v"))
		return NULL;
	if ((low <= code && code < high) || (file && perms[2] == 'x'))
		return "text";
	if ((low <= variable && variable < high) || (file && perms[1] == 'w') || (low == image_end && perms[1] == 'w'))
		return "data";
	return file ? "text" : "mmap";
}

/*
 * This process's /proc/self/maps as points of the `maps` chart: "<who>.<region> <start> <end>" (end exclusive)
 * for text, data, heap, stack and mmap regions. `code` and `variable` are addresses in this program's text and
 * initialised data, which name its own mappings on both kernels: with an MMU the file is mapped in parts; without
 * one the program is one anonymous rwx block holding both, split here at etext. Returns how many regions.
 */
static inline int maps_data(const char *who, const void *code, const void *variable)
{
	extern char etext[];
	static char maps[16 * 1024];
	if (read_text("/proc/self/maps", maps, sizeof maps) < 0) {
		say("maps: %s: cannot read /proc/self/maps: %s", who, strerror(errno));
		return 0;
	}
	unsigned long image_end = 0;
	int regions = 0;
	char series[48];
	for (char *line = maps; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long low, high;
		char perms[5] = "";
		if (sscanf(line, "%lx-%lx %4s", &low, &high, perms) != 3)
			continue;
		const char *region = maps_region(line, low, high, perms, (unsigned long)code, (unsigned long)variable,
						 image_end);
		if (!region)
			continue;
		regions++;
		unsigned long split = (unsigned long)etext;
		if (low <= (unsigned long)code && (unsigned long)code < high && low <= (unsigned long)variable &&
		    (unsigned long)variable < high && low < split && split < high) {
			snprintf(series, sizeof series, "%s.text", who);
			data("maps", series, "0x%lx 0x%lx", low, split);
			snprintf(series, sizeof series, "%s.data", who);
			data("maps", series, "0x%lx 0x%lx", split, high);
		} else {
			snprintf(series, sizeof series, "%s.%s", who, region);
			data("maps", series, "0x%lx 0x%lx", low, high);
		}
		image_end = in_line(line, "/") ? high : 0;
	}
	return regions;
}

#endif
