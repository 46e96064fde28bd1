# A stand-in for Buildroot's generic package infrastructure, so tests run buildroot_ext's engine (external.mk)
# for real without a Buildroot toolchain: per package, the local site copied into $(BUILD_DIR)/<package>, the
# post-rsync hooks (the source check), then the build, target and images commands, each with PKG and $(@D)
# set as Buildroot sets them. Buildroot's own helpers (UPPERCASE, sep, pkgname) come from TOPDIR.
#
# make -f harness.mk TOPDIR=<buildroot> BR2_EXTERNAL_MMULAB_PATH=<buildroot_ext> BUILD_DIR=... TARGET_DIR=...
#      BINARIES_DIR=... BUSYBOX_DIR=<folder with busybox.links> INSTALL=install TARGET_CC=... TARGET_LD=...
include $(TOPDIR)/support/misc/utils.mk
include $(TOPDIR)/package/pkg-utils.mk

define inner-generic-package
$(2)_NAME = $(1)
$(2)_PKGDIR = $(pkgdir)
HARNESS_PACKAGES += $(1)
$(1): $(BUILD_DIR)/$(1)/.stamp_installed
$(BUILD_DIR)/$(1)/.stamp_installed: PKG = $(2)
$(BUILD_DIR)/$(1)/.stamp_installed:
	rm -rf $$(@D) && mkdir -p $$(@D) && cp -a $$($(2)_SITE)/. $$(@D)
	$$(foreach hook,$$($(2)_POST_RSYNC_HOOKS),$$(call $$(hook))$$(sep))
	$$($(2)_BUILD_CMDS)
	$$($(2)_INSTALL_TARGET_CMDS)
	$$($(2)_INSTALL_IMAGES_CMDS)
	touch $$@
endef

include $(BR2_EXTERNAL_MMULAB_PATH)/external.mk

all: $(HARNESS_PACKAGES)
.DEFAULT_GOAL := all
