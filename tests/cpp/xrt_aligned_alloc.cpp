// Linked into the XRT tests of the sanitizer build only (make test-asan). XRT 2.13's
// libxrt_coreutil calls aligned_alloc(4096, n) with n not a multiple of 4096, which C11 leaves
// undefined and glibc accepts, but AddressSanitizer reports as an error and aborts. This definition
// in the executable takes precedence over the sanitizer's, rounds the size up and allocates through
// posix_memalign, which the sanitizer still tracks: edgemoe's own code stays fully checked.
#include <cstdlib>

extern "C" void* aligned_alloc(size_t alignment, size_t size) {
  void* p = nullptr;
  const size_t rounded = alignment ? (size + alignment - 1) / alignment * alignment : size;
  return posix_memalign(&p, alignment < sizeof(void*) ? sizeof(void*) : alignment, rounded) == 0 ? p : nullptr;
}
