/*
 * namespaces: an isolated view of system resources, for each of the seven kinds the lecture lists (mnt, pid, net,
 * user, uts, ipc, cgroup). For each kind a child is cloned into a new namespace of that kind; it looks at the
 * resource and says what it sees, then the parent, still in the old namespaces, looks at the same resource while
 * the child is alive. Each kind ends with the program's own judgement: a namespace of its own (another
 * /proc/<pid>/ns/<kind> inode) and the two views differ as that kind promises ("isolated view: yes").
 *
 * The children are cloned with CLONE_VM and a stack of their own (as pidns), so the same program runs without an
 * MMU; parent and child take turns through pipes and share their findings through memory.
 *
 * Where the kernel refuses a kind, the demo prints clone()'s real errno and why: a kind's namespace exists only when
 * its Kconfig option is built in (init/Kconfig, Linux 6.12), and then /proc/self/ns/<kind> exists. None of these
 * options depends on MMU.
 */
#define _GNU_SOURCE
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "../lib/memstat.h"

#define OUTSIDE_UID 1000
#define QUEUE_KEY 0x6d6d6c62 /* "mmlb" */

struct kind {
	const char *name;  /* as in /proc/<pid>/ns/<name> */
	int flag;          /* CLONE_NEW... */
	const char *flag_name;
	const char *kconfig; /* what builds it in (init/Kconfig) */
	void (*prepare)(void);      /* parent, before the clone */
	void (*outside)(pid_t);     /* parent, after the clone, before the child looks */
	int (*inside)(char *, size_t);            /* child: its view into the buffer; whether it is the expected one */
	int (*beside)(pid_t, char *, size_t);     /* parent: its view while the child lives; whether it differs */
	void (*cleanup)(void);
};

static char child_stack[32768] __attribute__((aligned(16)));
static int go[2], ready[2], done[2];
/* The child's findings: it shares the parent's memory (CLONE_VM). */
static char child_view[200];
static int child_saw_expected;
static const struct kind *current_kind;

/* ------------------------------------------------------------------------------------------------- */
/* small readers */

static void ns_link(const char *pid, const char *name, char *link, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, name);
	ssize_t length = readlink(path, link, size - 1);
	if (length < 0)
		snprintf(link, size, "none (%s)", strerror(errno));
	else
		link[length] = '\0';
}

/* Whether /proc/<who>/mounts lists a mount at `where`. */
static int mounted_at(const char *who, const char *where)
{
	static char text[16384];
	char path[64], needle[64];
	snprintf(path, sizeof path, "/proc/%s/mounts", who);
	snprintf(needle, sizeof needle, " %s ", where);
	return read_text(path, text, sizeof text) >= 0 && strstr(text, needle) != NULL;
}

/* The first line of a small file, without its newline, or "none (<error>)". */
static void first_line(const char *path, char *line, size_t size)
{
	char text[512];
	long got = read_text(path, text, sizeof text);
	if (got < 0) {
		snprintf(line, size, "none (%s)", strerror((int)-got));
		return;
	}
	text[strcspn(text, "\n")] = '\0';
	snprintf(line, size, "%s", text);
}

/* The interface names of /proc/<who>/net/dev, space-separated. */
static void interfaces(const char *who, char *names, size_t size)
{
	static char text[4096];
	char path[64];
	snprintf(path, sizeof path, "/proc/%s/net/dev", who);
	names[0] = '\0';
	if (read_text(path, text, sizeof text) < 0) {
		snprintf(names, size, "none (%s)", strerror(errno));
		return;
	}
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *colon = strchr(line, ':');
		if (!colon || strchr(line, '|'))
			continue;
		*colon = '\0';
		while (*line == ' ')
			line++;
		size_t used = strlen(names);
		snprintf(names + used, size - used, "%s%s", used ? " " : "", line);
	}
}

/* lo's flags through any socket's ioctl (a netlink socket: the only family this kernel's NET needs), or -errno. */
static int loopback_flags(int set_up)
{
	int fd = socket(AF_NETLINK, SOCK_RAW, 0);
	if (fd < 0)
		return -errno;
	struct ifreq request;
	memset(&request, 0, sizeof request);
	strcpy(request.ifr_name, "lo");
	int result = ioctl(fd, SIOCGIFFLAGS, &request) == 0 ? request.ifr_flags : -errno;
	if (result >= 0 && set_up && !(result & IFF_UP)) {
		request.ifr_flags |= IFF_UP;
		result = ioctl(fd, SIOCSIFFLAGS, &request) == 0 ? request.ifr_flags : -errno;
	}
	close(fd);
	return result;
}

static const char *up_down(int flags)
{
	return flags < 0 ? strerror(-flags) : flags & IFF_UP ? "UP" : "DOWN";
}

static const char *errno_name(int error)
{
	switch (error) {
	case EINVAL: return "EINVAL";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case ENOENT: return "ENOENT";
	case ENOMEM: return "ENOMEM";
	case ENODEV: return "ENODEV";
	default: return strerror(error);
	}
}

/* ------------------------------------------------------------------------------------------------- */
/* mnt: a tmpfs mounted in the child's namespace is not in the parent's */

static void mnt_prepare(void)
{
	mkdir("/mnt", 0755);
}

static int mnt_inside(char *view, size_t size)
{
	mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL); /* nothing propagates back to the parent */
	int error = mount("tmpfs", "/mnt", "tmpfs", 0, NULL) == 0 ? 0 : errno;
	close(open("/mnt/only-in-child", O_CREAT | O_WRONLY, 0644));
	int seen = mounted_at("self", "/mnt") && access("/mnt/only-in-child", F_OK) == 0;
	if (error)
		snprintf(view, size, "mount(tmpfs, /mnt) = -1 (%s)", errno_name(error));
	else
		snprintf(view, size, "a tmpfs on /mnt in /proc/self/mounts, holding only-in-child: %s", yes_no(seen));
	return seen;
}

static int mnt_beside(pid_t pid, char *view, size_t size)
{
	(void)pid;
	int seen = mounted_at("self", "/mnt") || access("/mnt/only-in-child", F_OK) == 0;
	snprintf(view, size, "a mount on /mnt in /proc/self/mounts, or only-in-child: %s", yes_no(seen));
	return !seen;
}

/* ------------------------------------------------------------------------------------------------- */
/* pid: the child is pid 1 of its namespace, its parent is outside it */

static int pid_inside(char *view, size_t size)
{
	pid_t self = getpid(), parent = getppid();
	snprintf(view, size, "getpid() = %d, getppid() = %d (its parent is outside its namespace)", self, parent);
	return self == 1 && parent == 0;
}

static int pid_beside(pid_t pid, char *view, size_t size)
{
	snprintf(view, size, "the child is pid %d, I am pid %d", pid, getpid());
	return pid != 1;
}

/* ------------------------------------------------------------------------------------------------- */
/* net: a new network stack has only lo, and it is down */

static void net_prepare(void)
{
	loopback_flags(1); /* the parent's lo up: the difference shows */
}

static int net_inside(char *view, size_t size)
{
	char names[128];
	interfaces("self", names, sizeof names);
	int flags = loopback_flags(0);
	snprintf(view, size, "interfaces: %s; lo is %s", names, up_down(flags));
	return strcmp(names, "lo") == 0 && flags >= 0 && !(flags & IFF_UP);
}

static int net_beside(pid_t pid, char *view, size_t size)
{
	(void)pid;
	char names[128];
	interfaces("self", names, sizeof names);
	int flags = loopback_flags(0);
	snprintf(view, size, "interfaces: %s; lo is %s", names, up_down(flags));
	return flags >= 0 && (flags & IFF_UP);
}

/* ------------------------------------------------------------------------------------------------- */
/* user: uid 0 inside is an unprivileged uid outside */

static void user_prepare(void)
{
	mkdir("/tmp", 01777);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	chmod("/tmp", 01777); /* NOMMU's tmpfs is ramfs, whose root is 0755 */
}

static void user_outside(pid_t pid)
{
	char path[64], map[32];
	snprintf(map, sizeof map, "0 %d 1", OUTSIDE_UID);
	snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
	int uid_error = write_text(path, map);
	snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
	int gid_error = write_text(path, map);
	say("namespaces: user: parent: wrote \"%s\" into the child's uid_map and gid_map: %s", map,
	    uid_error || gid_error ? strerror(-(uid_error ? uid_error : gid_error)) : "done");
}

static int user_inside(char *view, size_t size)
{
	syscall(SYS_setresgid, 0, 0, 0);
	syscall(SYS_setresuid, 0, 0, 0);
	int hostname = sethostname("mmulab-user", 11) == 0 ? 0 : errno;
	close(open("/tmp/made-in-userns", O_CREAT | O_WRONLY, 0644));
	struct stat status = {0};
	int stat_error = stat("/tmp/made-in-userns", &status) == 0 ? 0 : errno;
	snprintf(view, size, "getuid() = %d; owner of /tmp/made-in-userns: %ld; sethostname() = %s", getuid(),
	    stat_error ? -1L : (long)status.st_uid, hostname ? errno_name(hostname) : "0");
	return getuid() == 0 && !stat_error && status.st_uid == 0 && hostname == EPERM;
}

static int user_beside(pid_t pid, char *view, size_t size)
{
	char path[64], text[2048];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	read_text(path, text, sizeof text);
	char *uid_line = strstr(text, "\nUid:");
	long uid = uid_line ? strtol(uid_line + 5, NULL, 10) : -1;
	struct stat status = {0};
	long owner = stat("/tmp/made-in-userns", &status) == 0 ? (long)status.st_uid : -1;
	snprintf(view, size, "the child's uid (/proc/%d/status) = %ld; owner of /tmp/made-in-userns: %ld", pid, uid, owner);
	return uid == OUTSIDE_UID && owner == OUTSIDE_UID;
}

static void user_cleanup(void)
{
	unlink("/tmp/made-in-userns");
}

/* ------------------------------------------------------------------------------------------------- */
/* uts: a hostname of its own */

static int uts_inside(char *view, size_t size)
{
	int error = sethostname("mmulab-child", 12) == 0 ? 0 : errno;
	struct utsname names;
	uname(&names);
	snprintf(view, size, "sethostname(mmulab-child) = %s; hostname = %s", error ? errno_name(error) : "0",
	    names.nodename);
	return strcmp(names.nodename, "mmulab-child") == 0;
}

static int uts_beside(pid_t pid, char *view, size_t size)
{
	(void)pid;
	struct utsname names;
	uname(&names);
	snprintf(view, size, "hostname = %s", names.nodename);
	return strcmp(names.nodename, "mmulab-child") != 0;
}

/* ------------------------------------------------------------------------------------------------- */
/* ipc: the parent's SysV message queue does not exist in the child's namespace */

static int queue = -1, queue_error;

static void ipc_prepare(void)
{
	queue = msgget(QUEUE_KEY, IPC_CREAT | 0600);
	queue_error = queue < 0 ? errno : 0;
	struct { long type; char text[8]; } message = {1, "hello"};
	if (queue >= 0)
		msgsnd(queue, &message, sizeof message.text, 0);
}

static int ipc_inside(char *view, size_t size)
{
	int found = msgget(QUEUE_KEY, 0);
	int error = found < 0 ? errno : 0;
	snprintf(view, size, "msgget(%#x) = %d%s%s%s", QUEUE_KEY, found, error ? " (" : "", error ? errno_name(error) : "",
	    error ? ")" : "");
	return found < 0 && error == ENOENT;
}

static int ipc_beside(pid_t pid, char *view, size_t size)
{
	(void)pid;
	int found = msgget(QUEUE_KEY, 0);
	struct msqid_ds state = {0};
	if (found >= 0)
		msgctl(found, IPC_STAT, &state);
	if (queue_error)
		snprintf(view, size, "msgget(%#x, IPC_CREAT) = -1 (%s): no System V IPC (CONFIG_SYSVIPC is off)", QUEUE_KEY,
		    errno_name(queue_error));
	else
		snprintf(view, size, "msgget(%#x) = %d, its queue, holding %lu message(s)", QUEUE_KEY, found,
		    (unsigned long)state.msg_qnum);
	return found >= 0 && found == queue;
}

static void ipc_cleanup(void)
{
	if (queue >= 0)
		msgctl(queue, IPC_RMID, NULL);
	queue = -1;
}

/* ------------------------------------------------------------------------------------------------- */
/* cgroup: the child's /proc/self/cgroup is rooted at its own cgroup */

static int cgroup_ready;

static void cgroup_prepare(void)
{
	mkdir("/sys/fs/cgroup", 0755);
	int error = mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL) == 0 ? 0 : errno;
	if (error) {
		say("namespaces: cgroup: parent: mount(cgroup2) = -1 (%s)", errno_name(error));
		return;
	}
	mkdir("/sys/fs/cgroup/mmulab", 0755);
	char pid[16];
	snprintf(pid, sizeof pid, "%d", getpid());
	cgroup_ready = write_text("/sys/fs/cgroup/mmulab/cgroup.procs", pid) == 0;
	say("namespaces: cgroup: parent: moved itself into the cgroup /mmulab: %s", yes_no(cgroup_ready));
}

static int cgroup_inside(char *view, size_t size)
{
	char line[128];
	first_line("/proc/self/cgroup", line, sizeof line);
	snprintf(view, size, "/proc/self/cgroup: %s", line);
	return strcmp(line, "0::/") == 0;
}

static int cgroup_beside(pid_t pid, char *view, size_t size)
{
	char own[128], child[128], path[64];
	first_line("/proc/self/cgroup", own, sizeof own);
	snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
	first_line(path, child, sizeof child);
	snprintf(view, size, "/proc/self/cgroup: %s; the child's, seen from here: %s", own, child);
	return cgroup_ready && strcmp(own, "0::/mmulab") == 0 && strcmp(child, "0::/mmulab") == 0;
}

static void cgroup_cleanup(void)
{
	if (!cgroup_ready)
		return;
	char pid[16];
	snprintf(pid, sizeof pid, "%d", getpid());
	write_text("/sys/fs/cgroup/cgroup.procs", pid);
	rmdir("/sys/fs/cgroup/mmulab");
}

/* ------------------------------------------------------------------------------------------------- */

static const struct kind KINDS[] = {
	{"mnt", CLONE_NEWNS, "CLONE_NEWNS", "always built in", mnt_prepare, NULL, mnt_inside, mnt_beside, NULL},
	{"pid", CLONE_NEWPID, "CLONE_NEWPID", "PID_NS", NULL, NULL, pid_inside, pid_beside, NULL},
	{"net", CLONE_NEWNET, "CLONE_NEWNET", "NET_NS, which depends on NET (the network stack)", net_prepare, NULL,
	    net_inside, net_beside, NULL},
	{"user", CLONE_NEWUSER, "CLONE_NEWUSER", "USER_NS (default n)", user_prepare, user_outside, user_inside,
	    user_beside, user_cleanup},
	{"uts", CLONE_NEWUTS, "CLONE_NEWUTS", "UTS_NS", NULL, NULL, uts_inside, uts_beside, NULL},
	{"ipc", CLONE_NEWIPC, "CLONE_NEWIPC", "IPC_NS, which depends on SYSVIPC || POSIX_MQUEUE", ipc_prepare, NULL,
	    ipc_inside, ipc_beside, ipc_cleanup},
	{"cgroup", CLONE_NEWCGROUP, "CLONE_NEWCGROUP", "CGROUPS (the cgroup namespace has no option of its own)",
	    cgroup_prepare, NULL, cgroup_inside, cgroup_beside, cgroup_cleanup},
};

static int child(void *unused)
{
	(void)unused;
	char byte;
	read(go[0], &byte, 1);
	child_saw_expected = current_kind->inside(child_view, sizeof child_view);
	say("namespaces: %s: child:  %s", current_kind->name, child_view);
	write(ready[1], "r", 1);
	read(done[0], &byte, 1);
	return 0;
}

/* One kind: its child, both views, the judgement. Whether the view was isolated. */
static int show_kind(const struct kind *kind)
{
	char parent_link[64], child_link[64], view[200], pid_text[16], byte;
	current_kind = kind;
	child_saw_expected = 0;
	child_view[0] = '\0';
	ns_link("self", kind->name, parent_link, sizeof parent_link);
	if (kind->prepare)
		kind->prepare();
	pid_t pid = clone(child, child_stack + sizeof child_stack, CLONE_VM | kind->flag | SIGCHLD, NULL);
	if (pid < 0) {
		int error = errno;
		say("namespaces: %s: clone(%s) = -1 (%s)", kind->name, kind->flag_name, errno_name(error));
		if (error == EINVAL && strncmp(parent_link, "none", 4) == 0)
			say("namespaces: %s: refused: no /proc/self/ns/%s: this kernel is built without %s", kind->name,
			    kind->name, kind->kconfig);
		if (kind->cleanup)
			kind->cleanup();
		say("namespaces: %s: isolated view: no", kind->name);
		return 0;
	}
	if (kind->outside)
		kind->outside(pid);
	write(go[1], "g", 1);
	read(ready[0], &byte, 1);
	snprintf(pid_text, sizeof pid_text, "%d", pid);
	ns_link(pid_text, kind->name, child_link, sizeof child_link);
	int parent_differs = kind->beside(pid, view, sizeof view);
	say("namespaces: %s: parent: %s", kind->name, view);
	write(done[1], "d", 1);
	waitpid(pid, NULL, 0);
	if (kind->cleanup)
		kind->cleanup();
	int own_namespace = strncmp(child_link, "none", 4) != 0 && strcmp(child_link, parent_link) != 0;
	say("namespaces: %s: child in %s, parent in %s: a namespace of its own: %s", kind->name, child_link, parent_link,
	    yes_no(own_namespace));
	if (strncmp(parent_link, "none", 4) == 0)
		say("namespaces: %s: %s accepted, but no /proc/self/ns/%s: this kernel is built without %s", kind->name,
		    kind->flag_name, kind->name, kind->kconfig);
	int isolated = own_namespace && child_saw_expected && parent_differs;
	say("namespaces: %s: isolated view: %s", kind->name, yes_no(isolated));
	return isolated;
}

int main(void)
{
	mount_basics();
	struct utsname names;
	uname(&names);
	say("namespaces: %s kernel %s: seven kinds, each a child in a new namespace beside its parent",
	    nommu_kernel() ? "NOMMU" : "MMU", names.release);
	if (pipe(go) || pipe(ready) || pipe(done)) {
		say("namespaces: pipe failed: %s", strerror(errno));
		power_off();
	}
	char isolated_names[64] = "";
	int isolated = 0, kinds = (int)(sizeof KINDS / sizeof KINDS[0]);
	for (int i = 0; i < kinds; i++) {
		if (show_kind(&KINDS[i])) {
			isolated++;
			size_t used = strlen(isolated_names);
			snprintf(isolated_names + used, sizeof isolated_names - used, "%s%s", used ? " " : "", KINDS[i].name);
		}
	}
	say("namespaces: isolated kinds: %d of %d (%s)", isolated, kinds, isolated_names);
	say("namespaces: all seven isolated: %s", yes_no(isolated == kinds));
	power_off();
}
