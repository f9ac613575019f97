// Internal: the write-side flow control that stream and datagram transports share (Python:
// transports._FlowControlMixin), and the report of a callback's error to the loop.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/protocols.hpp"

namespace asyncio::detail {

/// Hands `exc` to `loop`'s exception handler with `message` (Python: loop.call_exception_handler
/// with a transport's context).
inline void report_to_loop(EventLoop& loop, std::exception_ptr exc,
                           const std::string& message) noexcept {
  ExceptionContext c;
  c.message = message;
  c.exception = std::move(exc);
  loop.call_exception_handler(c);
}

/// The write buffer's water marks and whether the protocol was told to pause writing.
/// Python: _FlowControlMixin
class FlowControl {
 public:
  static constexpr std::size_t kDefaultHighWater = std::size_t{64} * 1024;  // Python's

  /// Python: _set_write_buffer_limits: `high` defaults to 64 KiB (4 × low when only `low` is
  /// given), `low` to high / 4. ValueError unless high >= low.
  void set_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    std::size_t h = 0;
    if (high) {
      h = *high;
    } else {
      h = low ? 4 * *low : kDefaultHighWater;
    }
    const std::size_t l = low ? *low : h / 4;
    if (h < l) {
      throw ValueError("high (" + std::to_string(h) + ") must be >= low (" + std::to_string(l) +
                       ") must be >= 0");
    }
    high_ = h;
    low_ = l;
  }
  /// (low, high). Python: get_write_buffer_limits()
  [[nodiscard]] std::pair<std::size_t, std::size_t> limits() const noexcept {
    return {low_, high_};
  }

  /// The protocol was told to pause writing and not yet to resume.
  [[nodiscard]] bool paused() const noexcept { return paused_; }

  /// Python: _maybe_pause_protocol: pause_writing() once `buffered` is above the high-water
  /// mark; an error it throws goes to `report(exc, message)` (KeyboardInterrupt goes through).
  template <class Report>
  void maybe_pause(BaseProtocol* protocol, std::size_t buffered, Report&& report) {
    if (buffered <= high_ || paused_ || protocol == nullptr) return;
    paused_ = true;
    try {
      protocol->pause_writing();
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      report(std::current_exception(), "protocol.pause_writing() failed");
    }
  }
  /// Python: _maybe_resume_protocol: resume_writing() once `buffered` is at or below the
  /// low-water mark after a pause.
  template <class Report>
  void maybe_resume(BaseProtocol* protocol, std::size_t buffered, Report&& report) {
    if (!paused_ || buffered > low_ || protocol == nullptr) return;
    paused_ = false;
    try {
      protocol->resume_writing();
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      report(std::current_exception(), "protocol.resume_writing() failed");
    }
  }

 private:
  std::size_t high_ = kDefaultHighWater;
  std::size_t low_ = kDefaultHighWater / 4;
  bool paused_ = false;
};

}  // namespace asyncio::detail
