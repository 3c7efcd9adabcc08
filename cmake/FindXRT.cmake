# Finds Xilinx XRT's native C++ API (xrt_coreutil) for the fpga backend.
# Upstream installs (/opt/xilinx/xrt) ship XRTConfig.cmake; Debian 12's libxrt-dev does not, and its
# xrt.pc has a broken prefix (shared/spec/xrt.md §1.3, §2.2), so headers and libraries are searched
# for directly there. The native API's xrt_uuid.h calls libuuid inline, so uuid is linked too.
# Result: XRT_FOUND, XRT_VERSION, XRT_INCLUDE_DIR, and the imported target XRT::coreutil.
find_package(XRT CONFIG QUIET HINTS $ENV{XILINX_XRT} $ENV{XILINX_XRT}/share/cmake/XRT)
if(XRT_FOUND AND TARGET XRT::xrt_coreutil)
  if(NOT TARGET XRT::coreutil)
    add_library(XRT::coreutil INTERFACE IMPORTED)
    target_link_libraries(XRT::coreutil INTERFACE XRT::xrt_coreutil)
  endif()
  return()
endif()

find_path(XRT_INCLUDE_DIR NAMES xrt/xrt_kernel.h
          HINTS $ENV{XILINX_XRT}/include PATHS /usr/include/xrt /opt/xilinx/xrt/include)
find_library(XRT_COREUTIL_LIBRARY NAMES xrt_coreutil HINTS $ENV{XILINX_XRT}/lib PATHS /opt/xilinx/xrt/lib)
find_library(XRT_UUID_LIBRARY NAMES uuid)
find_path(XRT_UUID_INCLUDE_DIR NAMES uuid/uuid.h)

if(XRT_INCLUDE_DIR AND EXISTS "${XRT_INCLUDE_DIR}/version.h")
  file(STRINGS "${XRT_INCLUDE_DIR}/version.h" _xrt_version_line REGEX "xrt_build_version\\[\\] = ")
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" XRT_VERSION "${_xrt_version_line}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(XRT
  REQUIRED_VARS XRT_INCLUDE_DIR XRT_COREUTIL_LIBRARY XRT_UUID_LIBRARY XRT_UUID_INCLUDE_DIR
  VERSION_VAR XRT_VERSION)

if(XRT_FOUND AND NOT TARGET XRT::coreutil)
  add_library(XRT::coreutil UNKNOWN IMPORTED)
  set_target_properties(XRT::coreutil PROPERTIES
    IMPORTED_LOCATION "${XRT_COREUTIL_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${XRT_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${XRT_UUID_LIBRARY};Threads::Threads")
endif()
mark_as_advanced(XRT_INCLUDE_DIR XRT_COREUTIL_LIBRARY XRT_UUID_LIBRARY XRT_UUID_INCLUDE_DIR)
