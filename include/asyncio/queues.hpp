// asyncio/queues.hpp - Queue, PriorityQueue, LifoQueue (Python: queues.py, with 3.13's
// shutdown()).
//
//   asyncio::Queue<int> q{8};          // at most 8 items; 0 (the default): unbounded
//   co_await q.put(1);                 // waits while full
//   int x = co_await q.get();          // waits while empty
//   q.task_done();  co_await q.join(); // as in Python
//
// Single-loop objects, bound to the loop of the first task that has to wait on them. get() and
// put() serve their waiters first come, first served: a task that calls get() while other
// getters wait queues behind them even if an item is there, and an item stays in the queue
// until the woken getter takes it - so a getter cancelled at the moment it was handed an item
// loses nothing: the item stays and the next getter is woken (STYLE habit 5). get_nowait() and
// put_nowait() never wait, so, as in Python, they succeed whenever an item / a free slot is
// there; a woken waiter that then finds nothing waits again at the front of the line.
// Move-only items work (std::unique_ptr): items are moved in and out, never copied.
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/lock_waiters.hpp"
#include "asyncio/detail/queue_store.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio {

namespace detail {

template <class Q>
class QueueGet;
template <class Q>
class QueuePut;
template <class Q>
class QueueJoin;
template <class Q, bool Put>
class QueueWait;

/// The queue behind Queue, LifoQueue and PriorityQueue; `Store` decides the order.
/// Python: asyncio.Queue (whose subclasses override _init/_put/_get)
template <class T, class Store>
class BasicQueue {
  static_assert(std::move_constructible<T>, "queue items must be movable");

 public:
  using value_type = T;

  /// `maxsize` 0 means unbounded. Python: asyncio.Queue(maxsize=0)
  explicit BasicQueue(std::size_t maxsize = 0, Store store = Store())
      : store_(std::move(store)), maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  ~BasicQueue() = default;  // waiters still waiting get RuntimeError

  /// Python: Queue.qsize()
  [[nodiscard]] std::size_t qsize() const noexcept { return store_.size(); }
  /// Python: Queue.maxsize
  [[nodiscard]] std::size_t maxsize() const noexcept { return maxsize_; }
  /// Python: Queue.empty()
  [[nodiscard]] bool empty() const noexcept { return store_.empty(); }
  /// True when bounded and holding maxsize items. Python: Queue.full()
  [[nodiscard]] bool full() const noexcept { return maxsize_ > 0 && store_.size() >= maxsize_; }

  /// Puts an item, waiting while the queue is full (or while earlier putters wait).
  /// Cancellation: safe. If cancelled, the item is not put (it is destroyed with the
  ///   operation); a free slot already given to this putter passes to the next one.
  /// Throws: CancelledError, QueueShutDown; RuntimeError (waiting from another loop's task).
  /// Python: asyncio.Queue.put
  [[nodiscard]] QueuePut<BasicQueue> put(T item);
  /// Puts an item without waiting. QueueFull when full, QueueShutDown after shutdown(); when
  /// it throws, `item` has not been moved from. Python: asyncio.Queue.put_nowait
  void put_nowait(T&& item) {
    check_can_put();
    push(std::move(item));
  }
  /// Copies the item in. Python: asyncio.Queue.put_nowait
  void put_nowait(const T& item)
  requires std::copy_constructible<T>
  {
    check_can_put();
    push(T(item));
  }

  /// Removes and returns an item, waiting while the queue is empty (or while earlier getters
  /// wait). After shutdown() it still returns what is left, then throws QueueShutDown.
  /// Cancellation: safe. If cancelled, no item is removed; a wake-up already given to this
  ///   getter passes to the next one.
  /// Throws: CancelledError, QueueShutDown; RuntimeError (waiting from another loop's task).
  /// Python: asyncio.Queue.get
  [[nodiscard]] QueueGet<BasicQueue> get() noexcept;
  /// Removes and returns an item if one is there: QueueEmpty otherwise (QueueShutDown once shut
  /// down). Python: asyncio.Queue.get_nowait
  T get_nowait() {
    if (store_.empty()) throw_empty();
    return take();
  }

  /// One item taken by a consumer is fully processed. ValueError if called more times than
  /// items were put. Python: asyncio.Queue.task_done
  void task_done() {
    if (unfinished_ == 0) throw ValueError("task_done() called too many times");
    if (--unfinished_ == 0) joiners_.wake_all();
  }
  /// Waits until every item put has been matched by a task_done().
  /// Cancellation: safe; nothing to undo.
  /// Throws: CancelledError; RuntimeError (waiting from another loop's task).
  /// Python: asyncio.Queue.join
  [[nodiscard]] QueueJoin<BasicQueue> join() noexcept;

  /// Shuts the queue down: put()/put_nowait() throw QueueShutDown from now on, and so do get()
  /// and get_nowait() once the queue is empty; blocked putters and getters wake and re-check.
  /// With `immediate`, the items left are dropped at once (each counting as task_done(), so
  /// join() may return) and every get() throws. Python 3.13: asyncio.Queue.shutdown
  void shutdown(bool immediate = false);

  /// "<Queue at 0x... maxsize=0 _queue=[1, 2] _getters[1] tasks=2>" (items shown when T can
  /// be written to a std::ostream). Python: repr(queue)
  [[nodiscard]] std::string repr() const;

 private:
  template <class Q>
  friend class QueueGet;
  template <class Q>
  friend class QueuePut;
  template <class Q>
  friend class QueueJoin;
  template <class Q, bool Put>
  friend class QueueWait;

  void check_can_put() const {
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
  }
  [[noreturn]] void throw_empty() const {
    if (shutdown_) throw QueueShutDown();
    throw QueueEmpty();
  }
  void push(T&& item) {
    store_.push(std::move(item));
    ++unfinished_;
    wake_getters();
  }
  T take() {
    T item = store_.pop();
    wake_putters();
    return item;
  }
  // Wake as many waiters as there are items / free slots for them (all of them once shut down:
  // each re-checks and throws).
  void wake_getters() {
    if (shutdown_) {
      getters_.wake_all();
    } else {
      getters_.wake_up_to(store_.size());
    }
  }
  void wake_putters() {
    if (shutdown_) {
      putters_.wake_all();
    } else if (maxsize_ > 0) {
      putters_.wake_up_to(maxsize_ > store_.size() ? maxsize_ - store_.size() : 0);
    }
  }
  template <bool Put>
  FairWaitQueue& line() noexcept {
    return Put ? putters_ : getters_;
  }
  template <bool Put>
  void wake_line() {
    if constexpr (Put) {
      wake_putters();
    } else {
      wake_getters();
    }
  }
  Coro<T> get_slow();
  Coro<void> put_slow(T item);

  Store store_;
  std::size_t maxsize_;
  std::size_t unfinished_ = 0;  // items put and not yet task_done()
  bool shutdown_ = false;
  FairWaitQueue getters_;
  FairWaitQueue putters_;
  WaitList joiners_;
  LoopBinding loop_;
};

// ---- Awaiters ------------------------------------------------------------------------------

/// One turn in the getters' (or putters') line: parks until woken, then the caller re-checks.
template <class Q, bool Put>
class QueueWait final : public FairWaiter {
 public:
  QueueWait(Q& q, bool front) noexcept : q_(&q), front_(front) {}
  [[nodiscard]] bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    q_->template line<Put>().park(*this, h, front_, Put ? "Queue.put" : "Queue.get");
    q_->template wake_line<Put>();  // an item / slot may already be there for us
  }
  void await_resume() {
    check_orphaned();
    q_->template line<Put>().leave(*this);
    try {
      resume_check();
    } catch (...) {
      q_->template wake_line<Put>();  // cancelled after the wake-up: it passes on
      throw;
    }
  }

 private:
  Q* q_;
  bool front_;
};

/// Queue.get(): takes an item at once when one is there and no getter waits; otherwise runs
/// the waiting loop (Q::get_slow, a coroutine: a frame is allocated only when it has to wait).
template <class Q>
class [[nodiscard]] QueueGet {
  using T = typename Q::value_type;

 public:
  explicit QueueGet(Q& q) noexcept : q_(&q) {}
  QueueGet(QueueGet&&) noexcept(std::is_nothrow_move_constructible_v<T>) =
      default;  // before awaiting
  QueueGet& operator=(QueueGet&&) = delete;
  bool await_ready() {
    if (q_->getters_.empty() && (!q_->store_.empty() || q_->shutdown_)) return true;
    q_->loop_.check("asyncio::Queue");
    return false;
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    slow_.emplace(q_->get_slow());
    return slow_->await_suspend(h);
  }
  T await_resume() {
    if (slow_) return slow_->await_resume();
    return q_->get_nowait();  // an item, or QueueShutDown
  }

 private:
  Q* q_;
  std::optional<typename Coro<T>::Awaiter> slow_;
};

/// Queue.put(item): puts at once when there is room and no putter waits; otherwise runs the
/// waiting loop (Q::put_slow, which takes the item along).
template <class Q>
class [[nodiscard]] QueuePut {
  using T = typename Q::value_type;

 public:
  QueuePut(Q& q, T item) : q_(&q), item_(std::move(item)) {}
  QueuePut(QueuePut&&) noexcept(std::is_nothrow_move_constructible_v<T>) =
      default;  // before awaiting
  QueuePut& operator=(QueuePut&&) = delete;
  bool await_ready() {
    if (q_->putters_.empty() && (!q_->full() || q_->shutdown_)) return true;
    q_->loop_.check("asyncio::Queue");
    return false;
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    slow_.emplace(q_->put_slow(std::move(item_)));
    return slow_->await_suspend(h);
  }
  void await_resume() {
    if (slow_) return slow_->await_resume();
    q_->put_nowait(std::move(item_));  // or QueueShutDown
  }

 private:
  Q* q_;
  T item_;
  std::optional<Coro<void>::Awaiter> slow_;
};

/// Queue.join().
template <class Q>
class [[nodiscard]] QueueJoin final : public BroadcastWaiter {
 public:
  explicit QueueJoin(Q& q) noexcept : q_(&q) {}
  bool await_ready() {
    if (q_->unfinished_ == 0) return true;
    q_->loop_.check("asyncio::Queue");
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    q_->joiners_.push_back(this);
    park_running(h, "Queue.join");
  }
  void await_resume() {
    if (state() == State::idle) return;
    check_orphaned();
    resume_check();
  }

 private:
  Q* q_;
};

// ---- BasicQueue members --------------------------------------------------------------------

template <class T, class Store>
QueuePut<BasicQueue<T, Store>> BasicQueue<T, Store>::put(T item) {
  return QueuePut<BasicQueue>(*this, std::move(item));
}

template <class T, class Store>
QueueGet<BasicQueue<T, Store>> BasicQueue<T, Store>::get() noexcept {
  return QueueGet<BasicQueue>(*this);
}

template <class T, class Store>
QueueJoin<BasicQueue<T, Store>> BasicQueue<T, Store>::join() noexcept {
  return QueueJoin<BasicQueue>(*this);
}

// Python's `while self.empty(): await getter` loop. The first turn always waits: other getters
// were ahead of us. A woken getter that finds the queue empty again (get_nowait() took the
// item) waits at the front of the line, keeping its place.
template <class T, class Store>
Coro<T> BasicQueue<T, Store>::get_slow() {
  bool front = false;
  do {
    if (shutdown_ && store_.empty()) throw QueueShutDown();
    co_await QueueWait<BasicQueue, false>(*this, front);
    front = true;
  } while (store_.empty());
  co_return take();
}

template <class T, class Store>
Coro<void> BasicQueue<T, Store>::put_slow(T item) {
  bool front = false;
  do {
    if (shutdown_) throw QueueShutDown();
    co_await QueueWait<BasicQueue, true>(*this, front);
    front = true;
  } while (full());
  put_nowait(std::move(item));  // QueueShutDown if shut down meanwhile
}

template <class T, class Store>
void BasicQueue<T, Store>::shutdown(bool immediate) {
  shutdown_ = true;
  if (immediate) {
    while (!store_.empty()) {
      (void)store_.pop();
      if (unfinished_ > 0) --unfinished_;
    }
    if (unfinished_ == 0) joiners_.wake_all();
  }
  getters_.wake_all();
  putters_.wake_all();
}

template <class T, class Store>
std::string BasicQueue<T, Store>::repr() const {
  std::ostringstream out;
  out << '<' << Store::kName << " at " << static_cast<const void*>(this) << " maxsize=" << maxsize_;
  if constexpr (requires(std::ostream& os, const T& t) { os << t; }) {
    if (!store_.empty()) {
      out << " _queue=[";
      const char* sep = "";
      for (const T& item : store_.items()) {
        out << sep << item;
        sep = ", ";
      }
      out << ']';
    }
  }
  if (!getters_.empty()) out << " _getters[" << getters_.size() << ']';
  if (!putters_.empty()) out << " _putters[" << putters_.size() << ']';
  if (unfinished_ > 0) out << " tasks=" << unfinished_;
  if (shutdown_) out << " shutdown";
  out << '>';
  return out.str();
}

}  // namespace detail

/// A first-in, first-out queue for producer and consumer tasks. Python: asyncio.Queue
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
 public:
  /// `maxsize` 0 means unbounded. Python: asyncio.Queue(maxsize=0)
  explicit Queue(std::size_t maxsize = 0) : detail::BasicQueue<T, detail::FifoStore<T>>(maxsize) {}
};

/// A last-in, first-out queue. Python: asyncio.LifoQueue
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
 public:
  /// `maxsize` 0 means unbounded. Python: asyncio.LifoQueue(maxsize=0)
  explicit LifoQueue(std::size_t maxsize = 0)
      : detail::BasicQueue<T, detail::LifoStore<T>>(maxsize) {}
};

/// A queue that returns the smallest item first by `Compare` (std::less: smallest first, like
/// Python's heapq; use std::greater for largest first). Python: asyncio.PriorityQueue
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
 public:
  /// `maxsize` 0 means unbounded. Python: asyncio.PriorityQueue(maxsize=0)
  explicit PriorityQueue(std::size_t maxsize = 0, Compare comp = Compare())
      : detail::BasicQueue<T, detail::HeapStore<T, Compare>>(
            maxsize, detail::HeapStore<T, Compare>(std::move(comp))) {}
};

}  // namespace asyncio
