// Internal: how tasks wait on locks, events, conditions, barriers and queues.
//
// Every wait is an awaiter that lives in the awaiting frame (ParkedWaiter, zero allocation) and
// sits in an intrusive list of its primitive. Two kinds of list:
//
//   WaitList       broadcast: whoever wakes a waiter unlinks it (Event.set, Condition.notify,
//                  Barrier state changes, Queue.join). Nothing is handed over, so a waiter that
//                  is cancelled after its wake-up has nothing to pass on (Condition excepted,
//                  which passes the notification on itself).
//   FairWaitQueue  first come, first served access to something countable (the lock, permits,
//                  items, free slots). A waiter is woken only while there is one of those for
//                  it, and stays on the queue, counted as woken, until it resumes and takes it
//                  (habit 5: the resource never moves into the waiter). Newcomers see a
//                  non-empty queue and wait behind it, so nobody overtakes a woken waiter. A
//                  woken waiter that is cancelled before it resumes leaves and the primitive
//                  wakes the next one: the wake-up passes on.
//
// The primitive is bound to the loop of the first task that waits on it (Python's
// mixins._LoopBoundMixin); a wait from a task of another loop throws RuntimeError.
//
// Destroying a primitive while tasks wait on it "orphans" them: they are woken and their wait
// throws RuntimeError, without touching the dead primitive again.
#pragma once

#include <coroutine>
#include <cstddef>
#include <string>

#include "asyncio/detail/errors.hpp"
#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/task_state.hpp"

namespace asyncio::detail {

/// The wait's primitive was destroyed while the task waited. A RuntimeError; the library's own
/// coroutines let it through without touching the primitive again.
class OrphanedWait : public RuntimeError {
 public:
  OrphanedWait() : RuntimeError("synchronisation primitive destroyed while a task waited on it") {}
};

/// A parked task in a wait list: the awaiter base of every primitive in locks.hpp/queues.hpp.
/// States (ParkedWaiter's): idle -> parked -> {woken | cancelled}; orphaned is a flag on top.
/// Movable while idle (not yet awaited), so that an awaitable like `lock.acquire()` can be
/// passed by value (to wait_for, to a helper coroutine); never moved once awaited.
class ListWaiter : public ParkedWaiter, public ListHook {
 public:
  // NOLINTNEXTLINE(readability-redundant-member-init): a fresh waiter, not a moved one
  ListWaiter(ListWaiter&& /*idle*/) noexcept : ParkedWaiter(), ListHook() {}
  ListWaiter& operator=(ListWaiter&&) = delete;

  [[nodiscard]] bool orphaned() const noexcept { return orphaned_; }
  /// Called by a dying list: leave it and, if still parked, wake up to throw OrphanedWait.
  void orphan() noexcept {
    orphaned_ = true;
    try {
      wake_up();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the ready queue could not grow; nothing
    }                // better to do in a destructor
  }

 protected:
  ListWaiter() = default;
  ~ListWaiter() = default;
  /// First thing in await_resume after a real suspension.
  void check_orphaned() const {
    if (orphaned_) [[unlikely]]
      throw OrphanedWait();
  }

 private:
  bool orphaned_ = false;
};

/// A FIFO intrusive list of ListWaiters (circular, with a sentinel). On destruction, every
/// waiter still on it is orphaned.
class WaitList {
 public:
  WaitList() noexcept { head_.prev = head_.next = &head_; }
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList() {
    while (ListWaiter* w = pop_front()) w->orphan();
  }

  [[nodiscard]] bool empty() const noexcept { return head_.next == &head_; }
  void push_back(ListWaiter* w) noexcept { link_after(head_.prev, w); }
  void push_front(ListWaiter* w) noexcept { link_after(&head_, w); }
  ListWaiter* pop_front() noexcept {  // NOLINT(readability-make-member-function-const): unlinks
    if (empty()) return nullptr;
    auto* w = static_cast<ListWaiter*>(head_.next);
    unlink(w);
    return w;
  }
  static void unlink(ListWaiter* w) noexcept {
    if (w->linked()) IntrusiveList::unlink(w);
  }
  [[nodiscard]] std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const ListHook* h = head_.next; h != &head_; h = h->next) ++n;
    return n;
  }
  /// Unlinks and wakes the first `n` waiters, oldest first (they are all parked: a cancelled
  /// waiter unlinks itself at once).
  void wake(std::size_t n) {
    for (; n > 0; --n) {
      ListWaiter* w = pop_front();
      if (w == nullptr) return;
      w->wake_up();
    }
  }
  void wake_all() { wake(static_cast<std::size_t>(-1)); }

 private:
  void link_after(ListHook* pos, ListHook* n) noexcept {
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
  }
  ListHook head_;
};

/// A waiter of a broadcast WaitList: cancelling it just unlinks it.
class BroadcastWaiter : public ListWaiter {
 public:
  BroadcastWaiter(BroadcastWaiter&&) noexcept = default;

 protected:
  BroadcastWaiter() = default;
  ~BroadcastWaiter() { WaitList::unlink(this); }
  void on_cancel() noexcept override { WaitList::unlink(this); }
};

class FairWaitQueue;

/// A waiter of a FairWaitQueue.
class FairWaiter : public ListWaiter {
 public:
  FairWaiter(FairWaiter&&) noexcept = default;

 protected:
  FairWaiter() = default;
  inline ~FairWaiter();
  void on_cancel() noexcept override { WaitList::unlink(this); }  // was parked: no count to fix

 private:
  friend class FairWaitQueue;
  FairWaitQueue* queue_ = nullptr;
};

/// First come, first served waiters for a countable resource (see the top of this file).
///   parked --(wake_up_to: a unit is there for it)--> woken --(resumes: leave())--> gone
///   parked --(cancelled)--> gone at once; woken --(cancelled)--> leave(), the owner re-wakes
/// Woken waiters form the front of the line: newcomers queue behind them.
class FairWaitQueue {
 public:
  FairWaitQueue() = default;
  FairWaitQueue(const FairWaitQueue&) = delete;
  FairWaitQueue& operator=(const FairWaitQueue&) = delete;
  ~FairWaitQueue() = default;  // the lists orphan their waiters

  /// No waiter at all, parked or woken: a newcomer may take the resource at once.
  [[nodiscard]] bool empty() const noexcept { return parked_.empty() && woken_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return parked_.size() + n_woken_; }
  [[nodiscard]] std::size_t woken() const noexcept { return n_woken_; }

  /// From await_suspend: queue `w` (at the back; at the front when it already had its turn
  /// and found nothing) and park the running task on it. A pending cancellation cancels the
  /// wait at once (it unlinks again). The owner then calls wake_up_to().
  void park(FairWaiter& w, std::coroutine_handle<> h, bool front, const char* what) {
    w.queue_ = this;
    if (front) {
      parked_.push_front(&w);
    } else {
      parked_.push_back(&w);
    }
    w.park_running(h, what);
  }
  /// Wakes parked waiters, oldest first, until `available` of them are woken (or none is left).
  void wake_up_to(std::size_t available) {
    while (n_woken_ < available && !parked_.empty()) wake_front();
  }
  /// Wakes every parked waiter (shutdown: each re-checks and fails).
  void wake_all() {
    while (!parked_.empty()) wake_front();
  }
  /// From await_resume: `w` leaves the line (woken: it stops counting as woken).
  void leave(FairWaiter& w) noexcept {
    if (!w.linked()) return;
    WaitList::unlink(&w);
    if (w.state() == ParkedWaiter::State::woken) --n_woken_;
  }

 private:
  void wake_front() {
    ListWaiter* w = parked_.pop_front();
    woken_.push_back(w);
    ++n_woken_;
    w->wake_up();
  }

  WaitList parked_;
  WaitList woken_;
  std::size_t n_woken_ = 0;
};

inline FairWaiter::~FairWaiter() {
  // Destroyed without resuming (its task was abandoned when the loop closed).
  if (linked() && queue_ != nullptr) queue_->leave(*this);
}

/// The loop a primitive is bound to: the loop of the first task that waited on it.
/// Python: mixins._LoopBoundMixin
class LoopBinding {
 public:
  /// Binds on first use; RuntimeError when called outside a task or from another loop's task.
  TaskState& check(const char* what) {
    TaskState* running = tls_current_task;
    TaskState& task = running != nullptr ? *running : running_task(what);  // throws when none
    const LoopCore* loop = task.core_ptr();
    if (loop_ == nullptr) {
      loop_ = loop;
    } else if (loop_ != loop) [[unlikely]] {
      throw_other_loop(what);
    }
    return task;
  }

 private:
  [[noreturn]] static void throw_other_loop(const char* what) {
    throw RuntimeError(std::string(what) + " is bound to a different event loop");
  }
  const LoopCore* loop_ = nullptr;
};

}  // namespace asyncio::detail
