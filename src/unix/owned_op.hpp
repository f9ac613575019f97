// OwnedOp and OwnedCall: the I/O operations and calls that the library's own objects
// (transports, listeners, child-process watchers) keep for their whole life, each its own
// ready-queue entry, so that the owner's handler runs from the loop's queue, never from inside
// the engine's wait().
#pragma once

#include <concepts>
#include <string>

#include "asyncio/detail/ready_queue.hpp"
#include "asyncio/detail/runnable.hpp"
#include "unix/io_engine.hpp"

namespace asyncio::detail {

/// An operation owned by `Owner` that is also its own ready-queue entry: when the engine
/// completes it (later, from wait(), or at once from submit()) it queues itself, and the loop
/// then calls (owner.*handler)(result). `busy()` while the engine or the queue holds it.
///
/// An owner with `bool completes_inline(const IoOp&) noexcept` may take a completion from
/// wait() at once instead (returning true): only bookkeeping, no user code and nothing that
/// could destroy the owner (a transport's send op that sent everything and has nobody to tell).
template <class Owner>
class OwnedOp final : public IoOp, public Runnable {
 public:
  using Handler = void (Owner::*)(long);
  OwnedOp(OpKind kind, int fd, Owner& owner, Handler handler, ReadyQueue& ready) noexcept
      : IoOp(kind, fd), owner_(&owner), handler_(handler), ready_(&ready) {
    set_owned_fd(true);
  }
  OwnedOp(const OwnedOp&) = delete;
  OwnedOp& operator=(const OwnedOp&) = delete;
  ~OwnedOp() = default;

  [[nodiscard]] bool busy() const noexcept { return state() == OpState::parked || queued_; }
  [[nodiscard]] bool parked() const noexcept { return state() == OpState::parked; }
  /// Submits the op (it must not be busy). A completion at once is queued like a later one.
  void start(IoEngine& engine) {
    rearm();
    in_submit_ = true;
    try {
      engine.submit(*this);
    } catch (...) {
      in_submit_ = false;
      throw;
    }
    in_submit_ = false;
    if (state() == OpState::done) queue(result());
  }
  /// Queues the handler with `value` without any I/O (read again on the next pass).
  void queue(long value) {
    value_ = value;
    queued_ = true;
    ready_->push(static_cast<Runnable*>(this));
  }
  void run() override {
    queued_ = false;
    (owner_->*handler_)(value_);  // may destroy the owner: nothing after this
  }
  void discard() noexcept override {
    queued_ = false;
    owner_->on_discarded();  // may destroy the owner
  }
  [[nodiscard]] std::string describe() const override { return "transport I/O"; }

 private:
  void on_complete() noexcept override {
    if (in_submit_) return;  // start() queues it
    if constexpr (requires(Owner& o, const IoOp& op) {
                    { o.completes_inline(op) } -> std::same_as<bool>;
                  }) {
      if (owner_->completes_inline(*this)) return;
    }
    queue(result());
  }

  void on_data(const char* data, std::size_t n) noexcept override {
    if constexpr (requires(Owner& o) { o.on_stream_data(data, n); })
      owner_->on_stream_data(data, n);
  }

  Owner* owner_;
  Handler handler_;
  ReadyQueue* ready_;
  long value_ = 0;
  bool queued_ = false;
  bool in_submit_ = false;
};

/// A Runnable that calls a member function of its owner.
template <class Owner>
class OwnedCall final : public Runnable {
 public:
  OwnedCall(Owner& owner, void (Owner::*fn)(), ReadyQueue& ready) noexcept
      : owner_(&owner), fn_(fn), ready_(&ready) {}
  [[nodiscard]] bool queued() const noexcept { return queued_; }
  void queue() {
    queued_ = true;
    ready_->push(static_cast<Runnable*>(this));
  }
  void run() override {
    queued_ = false;
    (owner_->*fn_)();
  }
  void discard() noexcept override {
    queued_ = false;
    owner_->on_discarded();
  }

 private:
  Owner* owner_;
  void (Owner::*fn_)();
  ReadyQueue* ready_;
  bool queued_ = false;
};

}  // namespace asyncio::detail
