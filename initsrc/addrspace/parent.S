/*
 * addrspace, parent, in asm: the same demo and output as parent.c. Keep 0x1111 in an mmap'd page,
 * vfork + execve /bin/addrspace-child with the page's address as argv[1], wait, report.
 * No absolute addresses in data (nothing relocates an asm static PIE): argv is built at run time.
 */
#include "../lib/rt.h"

	.text
	.globl	_start
_start:
	/* s0 = mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) */
	li	a0, 0
	li	a1, 4096
	li	a2, PROT_READ | PROT_WRITE
	li	a3, MAP_PRIVATE | MAP_ANONYMOUS
	li	a4, -1
	li	a5, 0
	syscall	SYS_mmap
	mv	s0, a0
	li	t0, 0x1111
	sd	t0, 0(s0)

	say	"mmulab: addrspace: parent keeps "
	ld	a0, 0(s0)
	call	line_hex
	say	" at "
	mv	a0, s0
	call	line_hex
	call	line_end

	/* argv[1] = "0x<address>": format it with the line buffer, then copy it out */
	mv	a0, s0
	call	line_hex
	lla	a0, arg_address
	call	take_line
	say	"mmulab: addrspace: starting /bin/addrspace-child with vfork+execve"
	call	line_end

	lla	t0, argv
	lla	t1, child_path
	sd	t1, 0(t0)
	lla	t1, arg_address
	sd	t1, 8(t0)
	sd	zero, 16(t0)

	clone_with CLONE_VM | CLONE_VFORK | SIGCHLD
	bnez	a0, parent

	/* child (on the parent's stack until execve): execve(path, argv, envp = argv + 2) */
	lla	a0, child_path
	lla	a1, argv
	addi	a2, a1, 16
	syscall	SYS_execve
	li	a0, 127
	syscall	SYS_exit

parent:
	/* wait4(pid, &status, 0, NULL) */
	lla	a1, status
	li	a2, 0
	li	a3, 0
	syscall	SYS_wait4
	lla	t0, status
	lw	s1, 0(t0)
	andi	t1, s1, 0x7f
	beqz	t1, exited
	say	"mmulab: addrspace: parent: child killed by signal "
	andi	a0, s1, 0x7f
	call	line_dec
	call	line_end
	j	report
exited:
	say	"mmulab: addrspace: parent: child exited with status "
	srli	a0, s1, 8
	andi	a0, a0, 0xff
	call	line_dec
	call	line_end

report:
	say	"mmulab: addrspace: parent: value now "
	ld	a0, 0(s0)
	call	line_hex
	call	line_end
	ld	t0, 0(s0)
	li	t1, 0x1111
	bne	t0, t1, changed
	say	"mmulab: addrspace: parent: my memory is untouched: isolated address spaces"
	call	line_end
	call	power_off
changed:
	say	"mmulab: addrspace: parent: the child changed my memory: no isolation without an MMU"
	call	line_end
	call	power_off

	.section .rodata
child_path:
	.asciz	"/bin/addrspace-child"

	.bss
	.balign	8
argv:
	.skip	24
status:
	.skip	8
arg_address:
	.skip	32

	.section .note.GNU-stack, "", @progbits
