/*
 * Helpers shared by the memory demos (swap, buddy, numa): mount what they read, read and write small
 * kernel files, and pick numbers out of /proc/meminfo and /proc/buddyinfo. The demos judge these numbers
 * themselves and print booleans and lower bounds, never counts that vary from boot to boot.
 */
#ifndef MMULAB_MEMSTAT_H
#define MMULAB_MEMSTAT_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mmulab.h"

#define KIB 1024L
#define MIB (1024L * 1024L)

/* /proc, /sys and /dev: an init starts with nothing mounted. */
static inline void mount_basics(void)
{
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
}

/* The whole of a small file (NUL-terminated): its length, or -errno. */
static inline long read_text(const char *path, char *buffer, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t length = 0;
	ssize_t got;
	while (length < size - 1 && (got = read(fd, buffer + length, size - 1 - length)) > 0)
		length += got;
	close(fd);
	buffer[length] = '\0';
	return (long)length;
}

/* Write a value to a /proc or /sys file: 0, or -errno. */
static inline int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	ssize_t wrote = write(fd, text, strlen(text));
	int error = wrote < 0 ? -errno : 0;
	close(fd);
	return error;
}

/* A /proc/meminfo field in kB ("MemFree"), or -1 when this kernel does not have it. */
static inline long meminfo_kb(const char *field)
{
	static char text[8192];
	if (read_text("/proc/meminfo", text, sizeof text) < 0)
		return -1;
	size_t length = strlen(field);
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, field, length) == 0 && line[length] == ':')
			return strtol(line + length + 1, NULL, 10);
	return -1;
}

/* Free blocks of at least 2^min_order pages, summed over every zone of /proc/buddyinfo. */
static inline long buddy_blocks(int min_order)
{
	static char text[4096];
	if (read_text("/proc/buddyinfo", text, sizeof text) < 0)
		return -1;
	long blocks = 0;
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		/* "Node 0, zone   Normal     12      5 ...": the counts start after the zone's name. */
		char *zone = strstr(line, "zone");
		if (!zone)
			continue;
		char *cursor = zone + 4;
		while (*cursor == ' ')
			cursor++;
		while (*cursor && *cursor != ' ' && *cursor != '\n')
			cursor++;
		for (int order = 0;; order++) {
			char *end;
			long count = strtol(cursor, &end, 10);
			if (end == cursor)
				break;
			if (order >= min_order)
				blocks += count;
			cursor = end;
		}
	}
	return blocks;
}

/* Each line of /proc/buddyinfo as a console line: "<demo>: <when>: Node 0, zone ...". */
static inline void show_buddyinfo(const char *demo, const char *when)
{
	static char text[4096];
	if (read_text("/proc/buddyinfo", text, sizeof text) < 0) {
		say("%s: %s: no /proc/buddyinfo", demo, when);
		return;
	}
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		while (strstr(line, "  "))
			memmove(strstr(line, "  "), strstr(line, "  ") + 1, strlen(strstr(line, "  ")));
		say("%s: %s: %s", demo, when, line);
	}
}

/* True on a kernel without an MMU: only NOMMU's /proc/meminfo counts the memory its mmaps copy. */
static inline int nommu_kernel(void)
{
	return meminfo_kb("MmapCopy") >= 0;
}

static inline const char *yes_no(int condition)
{
	return condition ? "yes" : "no";
}

#endif
