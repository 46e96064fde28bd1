/*
 * slab: the kernel's object caches in /proc/slabinfo. Creating a thousand files in a tmpfs allocates a dentry and an
 * inode per file from their caches; unlinking frees them. Slab allocation does not depend on the MMU: the
 * kernel allocates its own objects from its own memory the same way on both kernels. (The run boots with
 * slab_nomerge so the dentry cache is not folded into another cache of the same size.)
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "../lib/procfs.h"

#define FILES 1000
#define AT_LEAST 750 /* objects already free in the CPU's own slab count as active in slabinfo */

/* Let SLUB give back what it holds per CPU (free objects in CPU slabs count as active in slabinfo), so the
 * counts say what the caches really hold: /sys/kernel/slab/<cache>/shrink. */
static void shrink(const char *cache)
{
	char path[96];
	snprintf(path, sizeof path, "/sys/kernel/slab/%s/shrink", cache);
	int error = write_text(path, "1");
	if (error < 0)
		say("slab: %s: %s", path, strerror(-error));
}

/* Active objects of a cache in /proc/slabinfo, or -1 when it is not listed. */
static long active_objects(const char *cache)
{
	char *text = read_file("/proc/slabinfo");
	size_t length = strlen(cache);
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, cache, length) == 0 && line[length] == ' ')
			return strtol(line + length, NULL, 10);
	return -1;
}

/* The inode cache tmpfs uses: shmem's own with an MMU, the generic one for NOMMU's ramfs-backed tmpfs. */
static const char *inode_cache(void)
{
	return active_objects("shmem_inode_cache") >= 0 ? "shmem_inode_cache" : "inode_cache";
}

static void show(const char *when, const char *inodes)
{
	say("slab: %s: dentry %ld active objects, %s %ld", when, active_objects("dentry"), inodes,
	    active_objects(inodes));
}

int main(void)
{
	mount_fs("proc", "/proc");
	mount_fs("sysfs", "/sys");
	mount_fs("tmpfs", "/tmp");
	char *header = read_file("/proc/slabinfo");
	if (!header) {
		say("slab: no /proc/slabinfo (%s)", strerror(errno));
		power_off();
	}
	header[strcspn(header, "\n")] = '\0';
	say("slab: /proc/slabinfo: %s", header);
	const char *inodes = inode_cache();
	long dentries = active_objects("dentry"), inode_objects = active_objects(inodes);
	show("before", inodes);
	char name[32];
	for (int i = 0; i < FILES; i++) {
		snprintf(name, sizeof name, "/tmp/f%04d", i);
		int fd = open(name, O_CREAT | O_WRONLY, 0644);
		if (fd < 0) {
			say("slab: creating %s failed: %s", name, strerror(errno));
			power_off();
		}
		close(fd);
	}
	show("after creating 1000 files in a tmpfs", inodes);
	long grown_dentries = active_objects("dentry") - dentries, grown_inodes = active_objects(inodes) - inode_objects;
	say("slab: dentry cache grew by at least %d objects: %s", AT_LEAST, grown_dentries >= AT_LEAST ? "yes" : "no");
	say("slab: inode cache grew by at least %d objects: %s", AT_LEAST, grown_inodes >= AT_LEAST ? "yes" : "no");
	long peak_dentries = active_objects("dentry"), peak_inodes = active_objects(inodes);
	for (int i = 0; i < FILES; i++) {
		snprintf(name, sizeof name, "/tmp/f%04d", i);
		unlink(name);
	}
	show("after unlinking them", inodes);
	int error = write_text("/proc/sys/vm/drop_caches", "2\n");
	if (error < 0)
		say("slab: writing /proc/sys/vm/drop_caches failed: %s", strerror(-error));
	shrink("dentry");
	shrink(inodes);
	show("after echo 2 > /proc/sys/vm/drop_caches and shrinking both caches", inodes);
	/* at least half: SLUB keeps partly used slabs, whose free objects slabinfo still counts as active */
	say("slab: unlinking and reclaim gave the dentries back: %s",
	    peak_dentries - active_objects("dentry") >= FILES / 2 ? "yes" : "no");
	say("slab: unlinking and reclaim gave the inodes back: %s",
	    peak_inodes - active_objects(inodes) >= FILES / 2 ? "yes" : "no");
	say("slab: the same on both kernels: slab allocation does not depend on the MMU");
	power_off();
}
