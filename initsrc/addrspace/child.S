/*
 * addrspace, child, in asm: the same as child.c. Parse argv[1] (0x<hex>), write 0x2222 there with
 * read() from a pipe, print what read() returned, then store 0x3333 there directly.
 */
#include "../lib/rt.h"

	.text
	.globl	_start
_start:
	/* sp -> argc, argv[0], argv[1]; exit 2 without an argument */
	ld	t0, 0(sp)
	li	t1, 2
	blt	t0, t1, usage
	ld	t0, 16(sp)
	addi	t0, t0, 2		/* skip "0x" */
	li	s0, 0
parse:
	lbu	t1, 0(t0)
	beqz	t1, parsed
	addi	t2, t1, -'0'
	li	t3, 10
	bltu	t2, t3, digit
	addi	t2, t1, -'a' + 10
digit:
	slli	s0, s0, 4
	or	s0, s0, t2
	addi	t0, t0, 1
	j	parse
parsed:
	say	"mmulab: addrspace: child pid "
	syscall	SYS_getpid
	call	line_dec
	say	" targets "
	mv	a0, s0
	call	line_hex
	call	line_end

	/* pipe2(fds, 0); write(fds[1], &value, 8); result = read(fds[0], target, 8) */
	lla	a0, fds
	li	a1, 0
	syscall	SYS_pipe2
	lla	t0, fds
	lw	a0, 4(t0)
	lla	a1, value
	li	a2, 8
	syscall	SYS_write
	lla	t0, fds
	lw	a0, 0(t0)
	mv	a1, s0
	li	a2, 8
	syscall	SYS_read
	mv	s1, a0
	say	"mmulab: addrspace: child: read() into that address returned "
	mv	a0, s1
	call	line_dec
	call	line_end

	say	"mmulab: addrspace: child: storing 0x3333 there directly"
	call	line_end
	li	t0, 0x3333
	sd	t0, 0(s0)
	say	"mmulab: addrspace: child: direct store done"
	call	line_end
	li	a0, 0
	syscall	SYS_exit
usage:
	li	a0, 2
	syscall	SYS_exit

	.data
	.balign	8
value:
	.dword	0x2222
fds:
	.word	-1, -1

	.section .note.GNU-stack, "", @progbits
