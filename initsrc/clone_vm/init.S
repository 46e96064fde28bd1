/*
 * clone_vm: the lecture's first working demo, as a riscv64 init (PID 1).
 *
 * The parent keeps one byte of memory ('A'), spawns a child with clone(CLONE_VM | CLONE_VFORK | SIGCHLD),
 * the child stores 'B' into that byte and exits, the parent waits and prints what it sees, then powers
 * off. CLONE_VM means both run in one address space on any kernel; on NOMMU that is the only kind of
 * address space there is. The child borrows the parent's stack (newsp = 0): CLONE_VFORK keeps the parent
 * suspended meanwhile, and the runtime's routines touch no stack.
 *
 * Position-independent (lla only, no absolute relocations): linked as a static PIE without PT_INTERP
 * so the NOMMU ELF-FDPIC loader accepts it.
 */
#include "../lib/rt.h"

	.text
	.globl	_start
_start:
	say	"mmulab: clone_vm init started"
	call	line_end
	say	"mmulab: parent: shared byte before clone = "
	lla	t0, shared
	lbu	a0, 0(t0)
	call	line_char
	call	line_end

	clone_with CLONE_VM | CLONE_VFORK | SIGCHLD
	bltz	a0, clone_failed
	beqz	a0, child

	/* parent: wait4(-1, NULL, 0, NULL), then read the byte again */
	li	a0, -1
	li	a1, 0
	li	a2, 0
	li	a3, 0
	syscall	SYS_wait4
	say	"mmulab: parent: shared byte after child exit = "
	lla	t0, shared
	lbu	a0, 0(t0)
	call	line_char
	call	line_end
	call	power_off

child:
	say	"mmulab: child: writing 'B' into the shared byte"
	call	line_end
	lla	t0, shared
	li	t1, 'B'
	sb	t1, 0(t0)
	li	a0, 0
	syscall	SYS_exit

clone_failed:
	say	"mmulab: clone failed"
	call	line_end
	call	power_off

	.data
shared:
	.byte	'A'

	.section .note.GNU-stack, "", @progbits
