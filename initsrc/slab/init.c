/*
 * slab: the kernel's object caches in /proc/slabinfo. Creating a thousand files in a tmpfs allocates a dentry and an
 * inode per file from their caches; unlinking frees them. Slab allocation does not depend on the MMU: the
 * kernel allocates its own objects from its own memory the same way on both kernels. (The run boots with
 * slab_nomerge so the dentry cache is not folded into another cache of the same size.)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>

#include "../lib/procfs.h"

#define FILES 1000
#define AT_LEAST 750 /* objects already free in the CPU's own slab count as active in slabinfo */
#define DEADLINE_MS 10000 /* the longest RCU may take to hand the unlinked dentries and inodes back */
#define POLL_MS 10

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

/* echo 2 > drop_caches (unused dentries and inodes) and let SLUB give back what it holds per CPU. */
static void reclaim(const char *inodes)
{
	int error = write_text("/proc/sys/vm/drop_caches", "2\n");
	if (error < 0)
		say("slab: writing /proc/sys/vm/drop_caches failed: %s", strerror(-error));
	shrink("dentry");
	shrink(inodes);
}

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
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

/* The chart's bars: active objects of both caches at one moment (`when`: before, created, reclaimed). */
static void chart(const char *when, const char *inodes)
{
	data("slab", "dentry", "%s %ld", when, active_objects("dentry"));
	data("slab", "inode", "%s %ld", when, active_objects(inodes));
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
	chart("before", inodes);
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
	chart("created", inodes);
	long grown_dentries = active_objects("dentry") - dentries, grown_inodes = active_objects(inodes) - inode_objects;
	say("slab: dentry cache grew by at least %d objects: %s", AT_LEAST, grown_dentries >= AT_LEAST ? "yes" : "no");
	say("slab: inode cache grew by at least %d objects: %s", AT_LEAST, grown_inodes >= AT_LEAST ? "yes" : "no");
	long peak_dentries = active_objects("dentry"), peak_inodes = active_objects(inodes);
	for (int i = 0; i < FILES; i++) {
		snprintf(name, sizeof name, "/tmp/f%04d", i);
		unlink(name);
	}
	show("after unlinking them", inodes);
	/* Unlinked dentries and inodes go back to their caches through RCU (call_rcu): only after a grace
	 * period, which a busy host stretches. Reclaim and recount until both have given back half, at most
	 * DEADLINE_MS: a deadline, never a fixed sleep, and said on the console (the line varies: no marker). */
	long waited_ms = 0;
	int dentries_back = 0, inodes_back = 0, looks = 0;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		reclaim(inodes);
		looks++;
		/* at least half: SLUB keeps partly used slabs, whose free objects slabinfo still counts as active */
		dentries_back = peak_dentries - active_objects("dentry") >= FILES / 2;
		inodes_back = peak_inodes - active_objects(inodes) >= FILES / 2;
		waited_ms = elapsed_ms(&start);
		if ((dentries_back && inodes_back) || waited_ms >= DEADLINE_MS)
			break;
		struct timespec pause = {0, POLL_MS * 1000000L};
		nanosleep(&pause, NULL); /* an idle CPU is what lets the grace period end */
	}
	show("after echo 2 > /proc/sys/vm/drop_caches and shrinking both caches", inodes);
	chart("reclaimed", inodes);
	say("slab: waited %ld.%02ld s for RCU to free them (%d look%s, deadline %d s)", waited_ms / 1000,
	    waited_ms % 1000 / 10, looks, looks == 1 ? "" : "s", DEADLINE_MS / 1000);
	say("slab: unlinking and reclaim gave the dentries back: %s", dentries_back ? "yes" : "no");
	say("slab: unlinking and reclaim gave the inodes back: %s", inodes_back ? "yes" : "no");
	say("slab: the same on both kernels: slab allocation does not depend on the MMU");
	power_off();
}
