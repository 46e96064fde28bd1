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

#endif
