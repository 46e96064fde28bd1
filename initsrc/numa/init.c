/*
 * numa: memory topology. On a NUMA machine each CPU has memory of its own (a node) and reaches the
 * others' memory at a larger distance; the kernel keeps free lists, reclaim and statistics per node
 * (/sys/devices/system/node/nodeN). A program can ask for a page on a given node with mbind() and ask
 * where a page is with get_mempolicy() or /proc/self/numa_maps (raw syscalls: musl has no libnuma).
 *
 * Booted on a two-node QEMU machine (one CPU and 64 MiB per node, distance 20). On riscv NUMA depends on
 * SMP and an MMU: a page is put on a node behind a virtual address and moved between nodes by changing
 * that address's page-table entry. The NOMMU kernel sees one pool of memory and has no mbind().
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "../lib/memstat.h"

#define MPOL_BIND 2
#define MPOL_F_NODE 1
#define MPOL_F_ADDR 2
#define PAGE 4096L

static void show_node(int node, long *total_kb)
{
	char path[96], text[4096];
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", node);
	read_text(path, text, sizeof text);
	char *field = strstr(text, "MemTotal:");
	*total_kb = field ? strtol(field + 9, NULL, 10) : 0;
	field = strstr(text, "MemFree:");
	char label[16];
	snprintf(label, sizeof label, "node%d", node);
	data("numa", "free", "%s %ld", label, field ? strtol(field + 8, NULL, 10) : 0);
	char cpus[64] = "", distance[64] = "";
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
	read_text(path, cpus, sizeof cpus);
	cpus[strcspn(cpus, "\n")] = '\0';
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", node);
	read_text(path, distance, sizeof distance);
	distance[strcspn(distance, "\n")] = '\0';
	say("numa: node%d: MemTotal %ld MiB, cpus %s, distances %s", node, *total_kb / 1024, cpus, distance);
}

/* The line of /proc/self/numa_maps that starts at `address`, without its newline, or "". */
static void numa_maps_line(void *address, char *line, size_t size)
{
	static char text[16384];
	line[0] = '\0';
	if (read_text("/proc/self/numa_maps", text, sizeof text) < 0)
		return;
	for (char *cursor = text; cursor && *cursor; cursor = strchr(cursor, '\n') ? strchr(cursor, '\n') + 1 : NULL) {
		if (strtoul(cursor, NULL, 16) == (uintptr_t)address) {
			size_t length = strcspn(cursor, "\n");
			length = length < size - 1 ? length : size - 1;
			memcpy(line, cursor, length);
			line[length] = '\0';
			return;
		}
	}
}

int main(void)
{
	mount_basics();
	int nommu = nommu_kernel();
	char online[64] = "?";
	read_text("/sys/devices/system/cpu/online", online, sizeof online);
	online[strcspn(online, "\n")] = '\0';
	say("numa: %s kernel, cpus online %s, MemTotal %ld MiB", nommu ? "NOMMU" : "MMU", online,
	    meminfo_kb("MemTotal") / 1024);

	int nodes = 0;
	long smallest = -1;
	while (1) {
		char path[64];
		snprintf(path, sizeof path, "/sys/devices/system/node/node%d", nodes);
		if (access(path, F_OK) != 0)
			break;
		long total_kb;
		show_node(nodes++, &total_kb);
		smallest = smallest < 0 || total_kb < smallest ? total_kb : smallest;
	}
	if (nodes == 0) {
		say("numa: no /sys/devices/system/node: one node, all %ld MiB in one pool", meminfo_kb("MemTotal") / 1024);
		data("numa", "free", "node0 %ld", meminfo_kb("MemFree"));
	} else
		say("numa: nodes in /sys/devices/system/node: %d", nodes);
	if (nodes >= 2)
		say("numa: every node has >= 32 MiB: %s", yes_no(smallest >= 32 * 1024));

	uint8_t *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) {
		say("numa: mmap failed: %s", strerror(errno));
		power_off();
	}
	unsigned long node1 = 1ul << 1;
	long bound = syscall(SYS_mbind, page, PAGE, MPOL_BIND, &node1, 64, 0);
	if (bound != 0) {
		int saved = errno;
		say("numa: mbind(MPOL_BIND, node 1) = %d (%s)", -saved, saved == ENOSYS ? "ENOSYS" : strerror(saved));
		if (nommu)
			say("numa: NUMA needs SMP and an MMU on riscv (Kconfig: NUMA depends on SMP && MMU): a page is "
			    "placed on a node, and moved between nodes, behind a virtual address");
		data("numa", "bound", "node1 none"); /* no page bound: this kernel has no mbind() */
		power_off();
	}
	say("numa: mbind(MPOL_BIND, node 1) = 0");
	page[0] = 1; /* the page is allocated now, on the bound node */
	int where = -1;
	long asked = syscall(SYS_get_mempolicy, &where, NULL, 0, page, MPOL_F_NODE | MPOL_F_ADDR);
	say("numa: get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) = %ld: the page is on node %d", asked, where);
	for (int node = 0; node < nodes; node++)
		data("numa", "bound", "node%d %d", node, node == where ? 1 : 0);
	char line[256];
	numa_maps_line(page, line, sizeof line);
	say("numa: numa_maps: %s", line);
	say("numa: numa_maps shows it bound to and on node 1: %s",
	    yes_no(strstr(line, "bind:1") && strstr(line, "N1=1")));
	power_off();
}
