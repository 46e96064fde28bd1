/*
 * clone_vm: the lecture's first working demo, as a riscv64 init (PID 1).
 *
 * The parent keeps one byte of shared memory ('A'), spawns a child with
 * clone(CLONE_VM | CLONE_VFORK | SIGCHLD), the child stores 'B' into that byte
 * and exits, the parent waits and prints what it sees, then powers off.
 * CLONE_VM means both run in one address space on any kernel; on NOMMU that
 * is the only kind of address space there is.
 *
 * Position-independent (lla only, no absolute relocations): linked as a
 * static PIE without PT_INTERP so the NOMMU ELF-FDPIC loader accepts it.
 */

#define SYS_write     64
#define SYS_exit      93
#define SYS_reboot    142
#define SYS_clone     220
#define SYS_wait4     260

#define CLONE_VM      0x00000100
#define CLONE_VFORK   0x00004000
#define SIGCHLD       17

#define LINUX_REBOOT_MAGIC1        0xfee1dead
#define LINUX_REBOOT_MAGIC2        0x28121969
#define LINUX_REBOOT_CMD_POWER_OFF 0x4321fedc

/* write(1, label, label_end - label) */
.macro print label
	li	a0, 1
	lla	a1, \label
	lla	a2, \label\()_end
	sub	a2, a2, a1
	li	a7, SYS_write
	ecall
.endm

	.text
	.globl	_start
_start:
	print	msg_start

	/* Record the value before the child runs. */
	lla	t0, shared
	lbu	t1, 0(t0)
	lla	t2, before_value
	sb	t1, 0(t2)
	print	msg_before

	/* clone(flags, newsp = 0: keep sp, the parent is suspended; ptid, tls, ctid) */
	li	a0, CLONE_VM | CLONE_VFORK | SIGCHLD
	li	a1, 0
	li	a2, 0
	li	a3, 0
	li	a4, 0
	li	a7, SYS_clone
	ecall
	bltz	a0, clone_failed
	beqz	a0, child

parent:
	/* wait4(-1, NULL, 0, NULL) */
	li	a0, -1
	li	a1, 0
	li	a2, 0
	li	a3, 0
	li	a7, SYS_wait4
	ecall

	lla	t0, shared
	lbu	t1, 0(t0)
	lla	t2, after_value
	sb	t1, 0(t2)
	print	msg_after
	j	power_off

child:
	print	msg_child
	lla	t0, shared
	li	t1, 'B'
	sb	t1, 0(t0)
	li	a0, 0
	li	a7, SYS_exit
	ecall

clone_failed:
	print	msg_clone_failed

power_off:
	print	msg_power_off
	li	a0, LINUX_REBOOT_MAGIC1
	li	a1, LINUX_REBOOT_MAGIC2
	li	a2, LINUX_REBOOT_CMD_POWER_OFF
	li	a3, 0
	li	a7, SYS_reboot
	ecall
	/* Power-off failed: exiting PID 1 panics the kernel, which the harness reports. */
	li	a0, 1
	li	a7, SYS_exit
	ecall

	.data
shared:
	.byte	'A'

msg_start:
	.ascii	"mmulab: clone_vm init started\n"
msg_start_end:
msg_before:
	.ascii	"mmulab: parent: shared byte before clone = "
before_value:
	.ascii	"?\n"
msg_before_end:
msg_child:
	.ascii	"mmulab: child: writing 'B' into the shared byte\n"
msg_child_end:
msg_after:
	.ascii	"mmulab: parent: shared byte after child exit = "
after_value:
	.ascii	"?\n"
msg_after_end:
msg_clone_failed:
	.ascii	"mmulab: clone failed\n"
msg_clone_failed_end:
msg_power_off:
	.ascii	"mmulab: powering off\n"
msg_power_off_end:

	.section .note.GNU-stack, "", @progbits
