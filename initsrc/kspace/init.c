/*
 * kspace: the kernel's own address space. With an MMU the kernel lives at high virtual addresses (its
 * text in the kernel mapping, all of RAM in the linear mapping, vmalloc() in an area of its own), which
 * the boot log's "Virtual kernel memory layout" and the page-table dump in debugfs show. Without an MMU
 * there is one identity layout: kernel text at its physical address inside System RAM, no vmalloc area
 * (VmallocTotal: 0 kB; vmalloc() is kmalloc()) and no kernel page tables to dump.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "../lib/procfs.h"

/* The address /proc/kallsyms gives a kernel symbol (root sees real values), or 0. */
static unsigned long kernel_symbol(const char *name)
{
	FILE *kallsyms = fopen("/proc/kallsyms", "r");
	char line[256], symbol[128], type;
	unsigned long address = 0, value;
	while (kallsyms && fgets(line, sizeof line, kallsyms))
		if (sscanf(line, "%lx %c %127s", &value, &type, symbol) == 3 && strcmp(symbol, name) == 0) {
			address = value;
			break;
		}
	if (kallsyms)
		fclose(kallsyms);
	return address;
}

/* The kernel page-table dump: each region's marker line and the first mapping under it. */
static void page_table_dump(void)
{
	FILE *dump = fopen("/sys/kernel/debug/kernel_page_tables", "r");
	if (!dump) {
		say("kspace: no kernel page tables to dump (%s)", strerror(errno));
		return;
	}
	char line[256];
	int after_marker = 0;
	while (fgets(line, sizeof line, dump)) {
		line[strcspn(line, "\n")] = '\0';
		if (strstr(line, "---[")) {
			say("kspace: ptdump: %s", line);
			after_marker = 1;
		} else if (after_marker && line[0] == '0') {
			say("kspace: ptdump:   %s", line);
			after_marker = 0;
		}
	}
	fclose(dump);
}

int main(void)
{
	mount_fs("proc", "/proc");
	mount_fs("sysfs", "/sys");
	if (access("/sys/kernel/debug", F_OK) == 0) /* only with CONFIG_DEBUG_FS */
		mount_fs("debugfs", "/sys/kernel/debug");
	long vmalloc_total = meminfo_kb("VmallocTotal");
	say("kspace: VmallocTotal: %ld kB%s", vmalloc_total,
	    vmalloc_total == 0 ? ": no vmalloc area, vmalloc() hands out kmalloc() memory" : "");
	unsigned long text = kernel_symbol("_stext"), low, high;
	if (!text)
		say("kspace: /proc/kallsyms does not show _stext");
	else if (in_system_ram(text, &low, &high)) {
		say("kspace: kernel text _stext at 0x%lx: inside System RAM %lx-%lx: identity mapped", text, low, high);
		/* the chart's one range (with an MMU it is drawn from the boot log's memory-layout lines) */
		data("kspace", "ram.identity", "0x%lx 0x%lx", low, high + 1);
	} else
		say("kspace: kernel text _stext at 0x%lx: outside System RAM: a virtual address (the kernel mapping)",
		    text);
	/* %pK addresses are hashed unless kptr_restrict is 1 (then real, for a reader with CAP_SYSLOG: root) */
	int error = write_text("/proc/sys/kernel/kptr_restrict", "1");
	if (error < 0 && error != -ENOENT)
		say("kspace: kptr_restrict: %s", strerror(-error));
	char *vmallocinfo = read_file("/proc/vmallocinfo");
	if (vmallocinfo) {
		vmallocinfo[strcspn(vmallocinfo, "\n")] = '\0';
		say("kspace: first vmalloc() area: %s", vmallocinfo);
	} else {
		say("kspace: no /proc/vmallocinfo (%s)", strerror(errno));
	}
	page_table_dump();
	power_off();
}
