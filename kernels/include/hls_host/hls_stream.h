// edgemoe's host-side stand-in for hls::stream: a FIFO between the processes of a dataflow
// region. In emulation the processes run one after another, so the FIFO must hold everything a
// producer writes before its consumer runs; reading an empty stream is a kernel bug and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <deque>

namespace hls {

template <class T>
class stream {
 public:
  stream() = default;
  explicit stream(const char* /*name*/) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  void write(const T& v) { fifo_.push_back(v); }
  T read() {
    if (fifo_.empty()) {
      std::fprintf(stderr, "hls::stream: read from an empty stream (dataflow order bug)\n");
      std::abort();
    }
    T v = fifo_.front();
    fifo_.pop_front();
    return v;
  }
  void operator<<(const T& v) { write(v); }
  void operator>>(T& v) { v = read(); }
  bool empty() const { return fifo_.empty(); }
  bool full() const { return false; }
  size_t size() const { return fifo_.size(); }

 private:
  std::deque<T> fifo_;
};

}  // namespace hls
