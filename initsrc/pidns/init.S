/*
 * pidns, in asm: the same demo and output as init.c. clone(CLONE_NEWPID | CLONE_NEWUTS | CLONE_VM |
 * CLONE_VFORK): the child prints getpid() (1 in its new namespace), sets and prints its hostname; the
 * parent prints the pid clone() gave it and its own, unchanged hostname.
 */
#include "../lib/rt.h"

#define NODENAME 65	/* offset of nodename in struct utsname (6 fields of 65 bytes) */

	.text
	.globl	_start
_start:
	clone_with CLONE_NEWPID | CLONE_NEWUTS | CLONE_VM | CLONE_VFORK | SIGCHLD
	bltz	a0, failed
	bnez	a0, parent

	say	"mmulab: pidns: child sees itself as pid "
	syscall	SYS_getpid
	call	line_dec
	call	line_end
	lla	a0, child_name
	li	a1, 12
	syscall	SYS_sethostname
	say	"mmulab: pidns: child hostname = "
	call	print_nodename
	li	a0, 0
	syscall	SYS_exit

parent:
	mv	s0, a0
	li	a1, 0
	li	a2, 0
	li	a3, 0
	syscall	SYS_wait4
	say	"mmulab: pidns: parent sees the child as pid "
	mv	a0, s0
	call	line_dec
	call	line_end
	say	"mmulab: pidns: parent hostname = "
	call	print_nodename
	call	power_off

failed:
	mv	s0, a0
	say	"mmulab: pidns: clone(CLONE_NEWPID | CLONE_NEWUTS) failed: "
	mv	a0, s0
	call	line_dec
	call	line_end
	call	power_off

/* print_nodename: uname() into names, append its nodename, end the line (a leaf-calling helper: keeps ra in s1) */
print_nodename:
	mv	s1, ra
	lla	a0, names
	syscall	SYS_uname
	lla	a0, names + NODENAME
	call	line_str
	call	line_end
	mv	ra, s1
	ret

	.section .rodata
child_name:
	.ascii	"mmulab-child"

	.bss
names:
	.skip	6 * 65

	.section .note.GNU-stack, "", @progbits
