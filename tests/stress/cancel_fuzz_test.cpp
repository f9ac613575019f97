// The seeded cancellation fuzzer (issue 11). From a 64-bit seed, fuzz_program.hpp draws a random
// tree of coroutines; this file runs it under virtual time - once in FIFO order, once in shuffle
// mode - and checks, after each run:
//   * the run ends: the root and every task it created finish within a virtual-time limit, and
//     a real-time watchdog aborts (naming the seed) a run that never ends;
//   * every task created is done (all_tasks() holds only the main task at the end);
//   * queue items are conserved: every item put is got exactly once, dropped by
//     shutdown(immediate=true), or still in the queue;
//   * no lock is left held, every semaphore is back at its initial value, no condition lock is
//     held, nobody waits at the barrier, and at most one holder (n for a semaphore) at a time;
//   * results are consistent: what a combinator returns is what its children returned;
//     a task awaited (co_await, wait_for, timeout, task_group, gather with return_exceptions)
//     is done when the await ends; wait() splits done from pending correctly;
//   * only errors that the program throws (FuzzError, TimeoutError, ExceptionGroup of those,
//     CancelledError, and the queue/barrier errors where a step expects them) are seen;
//   * in debug mode, the only "Task exception was never retrieved" reports are for
//     fire-and-forget tasks (and for the coroutines given to an as_completed() whose results
//     were not all consumed), the only ones Python would report; nothing else is reported;
//   * sanitizers stay quiet (the stress tests are built with ASan+UBSan in CI).
// Cancellations come from other tasks, call_later, call_soon and done callbacks, and from the
// time-outs; half of the programs keep a handle to every task to the end, the other half
// drop each handle once its node has ended (Program::weak), so that tasks die when the
// library lets them go. A failing seed prints itself and how to replay it (README.md here).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>
#include <asyncio/debug.hpp>
#include <asyncio/generators.hpp>

#include "fuzz_program.hpp"

#if defined(ASYNCIO_SANITIZED) && __has_include(<sanitizer/common_interface_defs.h>)
#include <sanitizer/common_interface_defs.h>
#define FUZZ_HAVE_DEATH_CALLBACK 1
#endif

namespace {

using asyncio::Coro;
using asyncio::Task;
using fuzz::Node;
using fuzz::Op;
using fuzz::Program;
using fuzz::Step;

// ---- shuffle mode ------------------------------------------------------------------------------
// RunOptions::shuffle_seed (0 or empty: off). Detected, so that this file compiles with and
// without it; the one line to flip if the detection ever has to go is kShuffleAvailable.

template <class O>
constexpr bool kHasShuffleSeed = requires(O o) { o.shuffle_seed = std::uint64_t{1}; };
constexpr bool kShuffleAvailable = kHasShuffleSeed<asyncio::RunOptions>;

template <class O>
void set_shuffle_seed(O& options, std::uint64_t seed) {
  if constexpr (kHasShuffleSeed<O>) options.shuffle_seed = seed;
}

// ---- errors ------------------------------------------------------------------------------------

/// What the program throws on purpose.
class FuzzError : public std::runtime_error {
 public:
  explicit FuzzError(int node) : std::runtime_error("FuzzError from n" + std::to_string(node)) {}
};

enum class Kind {
  cancelled,
  fuzz,
  timeout,
  group,
  queue_shutdown,
  queue_full,
  queue_empty,
  broken_barrier,
  other,
  base
};

Kind kind_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const asyncio::CancelledError&) {
    return Kind::cancelled;
  } catch (const FuzzError&) {
    return Kind::fuzz;
  } catch (const asyncio::ExceptionGroup&) {
    return Kind::group;
  } catch (const asyncio::TimeoutError&) {
    return Kind::timeout;
  } catch (const asyncio::QueueShutDown&) {
    return Kind::queue_shutdown;
  } catch (const asyncio::QueueFull&) {
    return Kind::queue_full;
  } catch (const asyncio::QueueEmpty&) {
    return Kind::queue_empty;
  } catch (const asyncio::BrokenBarrierError&) {
    return Kind::broken_barrier;
  } catch (const std::exception&) {
    return Kind::other;
  } catch (...) {
    return Kind::base;
  }
}

/// A short, deterministic description (no addresses): "fuzz(FuzzError from n3)", "group[...]".
std::string describe_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const asyncio::CancelledError& c) {
    return "cancelled(" + std::string(c.message()) + ")";
  } catch (const FuzzError& f) {
    return std::string("fuzz(") + f.what() + ")";
  } catch (const asyncio::ExceptionGroup& g) {
    std::string s = "group[";
    for (std::size_t i = 0; i < g.exceptions().size(); ++i) {
      s += (i ? "," : "") + describe_error(g.exceptions()[i]);
    }
    return s + "]";
  } catch (const asyncio::TimeoutError&) {
    return "timeout";
  } catch (const asyncio::QueueShutDown&) {
    return "QueueShutDown";
  } catch (const asyncio::QueueFull&) {
    return "QueueFull";
  } catch (const asyncio::QueueEmpty&) {
    return "QueueEmpty";
  } catch (const asyncio::BrokenBarrierError&) {
    return "BrokenBarrierError";
  } catch (const std::exception& x) {
    return std::string("other(") + typeid(x).name() + ": " + x.what() + ")";
  } catch (...) {
    return "unknown";
  }
}

/// An ExceptionGroup holds only what the program throws (no CancelledError, no library error).
bool group_is_clean(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const asyncio::ExceptionGroup& g) {
    if (g.exceptions().empty()) return false;
    for (const std::exception_ptr& x : g.exceptions()) {
      const Kind k = kind_of(x);
      if (k != Kind::fuzz && k != Kind::timeout && k != Kind::group) return false;
      if (k == Kind::group && !group_is_clean(x)) return false;
    }
    return true;
  } catch (...) {
    return false;
  }
}

// ---- queues behind one interface ---------------------------------------------------------------

class AnyQueue {
 public:
  AnyQueue() = default;
  AnyQueue(const AnyQueue&) = delete;
  AnyQueue& operator=(const AnyQueue&) = delete;
  virtual ~AnyQueue() = default;
  virtual Coro<void> put(int item) = 0;
  virtual Coro<int> get() = 0;
  virtual void put_nowait(int item) = 0;
  virtual int get_nowait() = 0;
  virtual void task_done() = 0;
  virtual Coro<void> join() = 0;
  virtual void shutdown(bool immediate) = 0;
  [[nodiscard]] virtual std::size_t qsize() const = 0;
};

template <class Q>
class QueueOf final : public AnyQueue {
 public:
  explicit QueueOf(std::size_t maxsize) : q_(maxsize) {}
  Coro<void> put(int item) override { co_await q_.put(item); }
  Coro<int> get() override { co_return co_await q_.get(); }
  void put_nowait(int item) override { q_.put_nowait(item); }
  int get_nowait() override { return q_.get_nowait(); }
  void task_done() override { q_.task_done(); }
  Coro<void> join() override { co_await q_.join(); }
  void shutdown(bool immediate) override { q_.shutdown(immediate); }
  [[nodiscard]] std::size_t qsize() const override { return q_.qsize(); }

 private:
  Q q_;
};

// ---- one run of a program ----------------------------------------------------------------------

struct TaskMeta {
  int node = -1;
  bool leaky = false;
};

struct Report {
  std::string message;
  std::string error;
  int node = -1;
  bool known = false;
  bool leaky = false;
};

/// Everything one run of a program shares: the program, the trace, the registry of tasks, the
/// resources and their bookkeeping. Outlives the loop.
class Run {
 public:
  Run(const Program& p, bool shuffle) : p(p), shuffle(shuffle) {
    const std::size_t n = p.nodes.size();
    node_task.resize(n);
    handles.resize(n);
    results.resize(n);
    returned_cancelling.resize(n);
    for (int i = 0; i < p.locks; ++i) locks.push_back(std::make_unique<asyncio::Lock>());
    lock_holders.assign(locks.size(), 0);
    for (std::size_t i = 0; i < p.semaphores.size(); ++i) {
      if (p.bounded[i]) {
        sems.push_back(std::make_unique<asyncio::BoundedSemaphore>(p.semaphores[i]));
      } else {
        sems.push_back(std::make_unique<asyncio::Semaphore>(p.semaphores[i]));
      }
    }
    sem_holders.assign(sems.size(), 0);
    for (int i = 0; i < p.events; ++i) events.push_back(std::make_unique<asyncio::Event>());
    for (int i = 0; i < p.conditions; ++i) {
      conds.push_back(std::make_unique<asyncio::Condition>());
    }
    cond_counter.assign(conds.size(), 0);
    for (int parties : p.barriers) barriers.push_back(std::make_unique<asyncio::Barrier>(parties));
    for (const fuzz::QueueSpec& q : p.queues) {
      const auto maxsize = static_cast<std::size_t>(q.maxsize);
      if (q.kind == 0) {
        queues.push_back(std::make_unique<QueueOf<asyncio::Queue<int>>>(maxsize));
      } else if (q.kind == 1) {
        queues.push_back(std::make_unique<QueueOf<asyncio::LifoQueue<int>>>(maxsize));
      } else {
        queues.push_back(std::make_unique<QueueOf<asyncio::PriorityQueue<int>>>(maxsize));
      }
    }
    put_ok.resize(queues.size());
    got.resize(queues.size());
    dropped.resize(queues.size());
  }

  /// Appends an event to the trace: "<loop time> n<node> <what>".
  void log(int node, const std::string& what) {
    ++events_logged;
    if (events_logged == kMaxEvents) fail("more than " + std::to_string(kMaxEvents) + " events");
    trace += fuzz::detail::fmt_time(asyncio::get_running_loop().time());
    trace += " n" + std::to_string(node) + " " + what + "\n";
  }
  void fail(const std::string& what) {
    if (failures.size() < 50) failures.push_back(what);
  }
  void fail_at(int node, const Step& s, const std::string& what) {
    fail("n" + std::to_string(node) + " step #" + std::to_string(s.sid) + " (" +
         fuzz::op_name(s.op) + "): " + what);
  }

  /// Keeps a handle to a task until the end, and learns which node it runs. With weak
  /// handles, only the tasks the library made (for a coroutine given to a combinator) are kept:
  /// this file's own tasks are named "n<node>", which is how a report names their node.
  void adopt(const asyncio::TaskRef& t, int node, bool leaky, bool named) {
    if (!t || (named && p.weak)) return;
    const void* key = t.get();
    if (meta.find(key) != meta.end()) return;
    meta.emplace(key, TaskMeta{node, leaky});
    tasks.push_back(t);
  }

  void on_report(const asyncio::ExceptionContext& ctx) {
    Report rep;
    rep.message = ctx.message;
    if (ctx.exception) rep.error = describe_error(ctx.exception);
    if (ctx.task) {
      auto it = meta.find(ctx.task.get());
      const std::string name = ctx.task.get_name();
      if (it != meta.end()) {
        rep.known = true;
        rep.node = it->second.node;
        rep.leaky = it->second.leaky;
      } else if (name.size() > 1 && name[0] == 'n') {
        const int node = std::atoi(name.c_str() + 1);
        if (node >= 0 && static_cast<std::size_t>(node) < p.nodes.size()) {
          rep.known = true;
          rep.node = node;
          rep.leaky = p.nodes[static_cast<std::size_t>(node)].leaky;
        }
      }
    }
    reports.push_back(std::move(rep));
  }

  static constexpr std::uint64_t kMaxEvents = 2'000'000;

  const Program& p;
  const bool shuffle;
  std::string trace;
  std::uint64_t events_logged = 0;
  std::size_t nodes_run = 0;
  std::vector<std::string> failures;
  std::vector<Report> reports;
  bool released = false;  // the end: callbacks that fire now do nothing

  std::vector<asyncio::TaskRef> tasks;
  std::unordered_map<const void*, TaskMeta> meta;  // looked up only, never iterated
  std::vector<asyncio::TaskRef> node_task;         // the task that runs each node
  std::vector<Task<int>> handles;                  // ... when this file created it
  std::vector<std::optional<int>> results;         // what each node returned
  std::vector<bool> returned_cancelling;           // ... with a cancellation request pending

  std::vector<std::unique_ptr<asyncio::Lock>> locks;
  std::vector<int> lock_holders;
  std::vector<std::unique_ptr<asyncio::Semaphore>> sems;
  std::vector<int> sem_holders;
  std::vector<std::unique_ptr<asyncio::Event>> events;
  std::vector<std::unique_ptr<asyncio::Condition>> conds;
  std::vector<int> cond_counter;
  std::vector<std::unique_ptr<asyncio::Barrier>> barriers;
  std::vector<std::unique_ptr<AnyQueue>> queues;
  std::vector<std::vector<int>> put_ok;   // per queue: items whose put succeeded
  std::vector<std::vector<int>> got;      // per queue: items taken out
  std::vector<std::vector<int>> dropped;  // per queue: items dropped by shutdown(immediate)
  int next_item = 1;
};

/// Counts the holders of a lock or semaphore while alive; fails the run past `limit`.
class Holding {
 public:
  Holding(Run& r, int& count, int limit, int node, const Step& s) : count_(&count) {
    if (++*count_ > limit) {
      r.fail_at(node, s,
                std::to_string(*count_) + " holders at once (limit " + std::to_string(limit) + ")");
    }
  }
  Holding(const Holding&) = delete;
  Holding& operator=(const Holding&) = delete;
  ~Holding() { --*count_; }

 private:
  int* count_;
};

int cancelling_now() {
  asyncio::TaskRef t = asyncio::current_task();
  return t ? t.cancelling() : 0;
}

std::string task_name(int node) {
  return "n" + std::to_string(node);
}

/// An error reached step `s` of node `id`. Rethrows a cancellation of this task (one more
/// request than when the step began: `base`) and, with s.propagate, any allowed error; logs
/// the others; fails the run for errors the program never throws.
void settle(Run& r, int id, const Step& s, const std::exception_ptr& e, int base,
            std::initializer_list<Kind> also = {}) {
  const Kind k = kind_of(e);
  switch (k) {
    case Kind::cancelled:
      if (cancelling_now() > base || s.propagate) std::rethrow_exception(e);
      r.log(id, "#" + std::to_string(s.sid) + " sees a child's " + describe_error(e));
      return;
    case Kind::group:
      if (!group_is_clean(e)) r.fail_at(id, s, "unexpected ExceptionGroup " + describe_error(e));
      [[fallthrough]];
    case Kind::fuzz:
    case Kind::timeout:
      if (s.propagate) {
        r.log(id, "#" + std::to_string(s.sid) + " propagates " + describe_error(e));
        std::rethrow_exception(e);
      }
      r.log(id, "#" + std::to_string(s.sid) + " caught " + describe_error(e));
      return;
    default:
      break;
  }
  if (std::find(also.begin(), also.end(), k) != also.end()) {
    r.log(id, "#" + std::to_string(s.sid) + " caught " + describe_error(e));
    return;
  }
  r.fail_at(id, s, "unexpected exception " + describe_error(e));
}

Coro<int> node_main(Run& r, int id);
Coro<void> exec(Run& r, int id, const Step& s);

void check_value(Run& r, int id, const Step& s, int kid, int v) {
  const std::optional<int>& want = r.results[static_cast<std::size_t>(kid)];
  if (!want || *want != v) {
    r.fail_at(id, s,
              "got " + std::to_string(v) + " from n" + std::to_string(kid) + ", which " +
                  (want ? "returned " + std::to_string(*want) : std::string("never returned")));
  }
}

Task<int> spawn(Run& r, int kid, bool leaky = false) {
  Task<int> t = asyncio::create_task(node_main(r, kid), task_name(kid));
  r.adopt(t, kid, leaky, true);
  r.handles[static_cast<std::size_t>(kid)] = t;
  return t;
}

template <class X>
X make_child(Run& r, int kid) {
  if constexpr (std::is_same_v<X, Task<int>>) {
    return spawn(r, kid);
  } else {
    return node_main(r, kid);
  }
}

void cancel_node(Run& r, int from, int target, const char* how) {
  if (r.released) return;
  asyncio::TaskRef t = r.node_task[static_cast<std::size_t>(target)];
  std::string what = std::string(how) + " n" + std::to_string(target);
  if (!t) {
    r.log(from, what + ": not started");
    return;
  }
  const bool ok = t.cancel("by n" + std::to_string(from));
  r.log(from, what + (ok ? ": requested" : ": already done"));
}

// ---- the steps ---------------------------------------------------------------------------------

Coro<void> op_await_task(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  Task<int> t = spawn(r, s.kids[0]);
  try {
    const int v = s.flag ? co_await std::move(t) : co_await t;
    check_value(r, id, s, s.kids[0], v);
  } catch (...) {
    err = std::current_exception();
  }
  if (!t.done()) r.fail_at(id, s, "co_await task ended while the task still runs");
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_await_coro(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  try {
    const int v = co_await node_main(r, s.kids[0]);
    check_value(r, id, s, s.kids[0], v);
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

template <class X>
Coro<std::vector<int>> gather_tuple(std::vector<X> xs) {
  std::vector<int> out;
  if (xs.size() == 1) {
    auto [a] = co_await asyncio::gather(std::move(xs[0]));
    out.push_back(a);
  } else if (xs.size() == 2) {
    auto [a, b] = co_await asyncio::gather(std::move(xs[0]), std::move(xs[1]));
    out.push_back(a);
    out.push_back(b);
  } else {
    auto [a, b, c] = co_await asyncio::gather(std::move(xs[0]), std::move(xs[1]), std::move(xs[2]));
    out.push_back(a);
    out.push_back(b);
    out.push_back(c);
  }
  co_return out;
}

template <class X>
Coro<std::vector<asyncio::Outcome<int>>> gather_tuple_rex(std::vector<X> xs) {
  std::vector<asyncio::Outcome<int>> out;
  if (xs.size() == 1) {
    auto [a] = co_await asyncio::gather(asyncio::return_exceptions, std::move(xs[0]));
    out.push_back(std::move(a));
  } else if (xs.size() == 2) {
    auto [a, b] =
        co_await asyncio::gather(asyncio::return_exceptions, std::move(xs[0]), std::move(xs[1]));
    out.push_back(std::move(a));
    out.push_back(std::move(b));
  } else {
    auto [a, b, c] = co_await asyncio::gather(asyncio::return_exceptions, std::move(xs[0]),
                                              std::move(xs[1]), std::move(xs[2]));
    out.push_back(std::move(a));
    out.push_back(std::move(b));
    out.push_back(std::move(c));
  }
  co_return out;
}

/// Checks gather(return_exceptions)'s outcomes against what the children did.
void check_outcomes(Run& r, int id, const Step& s, const std::vector<int>& kids,
                    const std::vector<asyncio::Outcome<int>>& outs) {
  if (outs.size() != kids.size()) {
    r.fail_at(id, s,
              "gather returned " + std::to_string(outs.size()) + " outcomes for " +
                  std::to_string(kids.size()) + " children");
    return;
  }
  std::string line = "#" + std::to_string(s.sid) + " outcomes";
  for (std::size_t i = 0; i < outs.size(); ++i) {
    const int kid = kids[i];
    const std::optional<int>& want = r.results[static_cast<std::size_t>(kid)];
    if (outs[i].has_value()) {
      check_value(r, id, s, kid, outs[i].value());
      line += " " + std::to_string(outs[i].value());
    } else {
      const std::exception_ptr& e = outs[i].exception();
      const Kind k = kind_of(e);
      if (k != Kind::cancelled && k != Kind::fuzz && k != Kind::timeout &&
          !(k == Kind::group && group_is_clean(e))) {
        r.fail_at(id, s, "child n" + std::to_string(kid) + " ended with " + describe_error(e));
      }
      // A task that returns while a cancellation request is outstanding (it cancelled itself,
      // or a task group re-armed an outer request it had swallowed) ends cancelled: Python's
      // "Task is cancelled right before coro stops".
      const bool may_end_cancelled = r.returned_cancelling[static_cast<std::size_t>(kid)];
      if (want && !(k == Kind::cancelled && may_end_cancelled)) {
        r.fail_at(id, s,
                  "outcome of n" + std::to_string(kid) + " is " + describe_error(e) +
                      " but it returned " + std::to_string(*want));
      }
      line += " " + describe_error(e);
    }
  }
  r.log(id, line);
}

template <class X>
Coro<void> op_gather(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  std::vector<Task<int>> tasks;  // to check that they are done (task children only)
  try {
    std::vector<X> xs;
    for (int kid : s.kids) {
      xs.push_back(make_child<X>(r, kid));
      if constexpr (std::is_same_v<X, Task<int>>) tasks.push_back(xs.back());
    }
    const bool tuple_form = (s.mode & 1) != 0 && xs.size() <= 3;
    if (!s.flag) {
      std::vector<int> vals;
      if (tuple_form) {
        vals = co_await gather_tuple(std::move(xs));
      } else {
        vals = co_await asyncio::gather(std::move(xs));
      }
      if (vals.size() != s.kids.size()) r.fail_at(id, s, "gather returned the wrong count");
      for (std::size_t i = 0; i < vals.size() && i < s.kids.size(); ++i) {
        check_value(r, id, s, s.kids[i], vals[i]);
      }
      r.log(id, "#" + std::to_string(s.sid) + " gathered");
    } else {
      std::vector<asyncio::Outcome<int>> outs;
      if (tuple_form) {
        outs = co_await gather_tuple_rex(std::move(xs));
      } else {
        outs = co_await asyncio::gather(asyncio::return_exceptions, std::move(xs));
      }
      check_outcomes(r, id, s, s.kids, outs);
    }
    for (const Task<int>& t : tasks) {
      if (!t.done()) r.fail_at(id, s, "gather returned while a child still runs");
    }
  } catch (...) {
    err = std::current_exception();
  }
  if (err && s.flag) {
    // With return_exceptions the gather ends only when every child has, even when cancelled.
    for (const Task<int>& t : tasks) {
      if (!t.done()) r.fail_at(id, s, "gather(return_exceptions) ended while a child still runs");
    }
  }
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_wait_for(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  Task<int> t;
  try {
    int v = 0;
    if (s.flag) {
      v = co_await asyncio::wait_for(node_main(r, s.kids[0]), s.t2);
    } else {
      t = spawn(r, s.kids[0]);
      v = co_await asyncio::wait_for(t, s.t2);
    }
    check_value(r, id, s, s.kids[0], v);
  } catch (...) {
    err = std::current_exception();
  }
  if (t && !t.done()) r.fail_at(id, s, "wait_for ended while its task still runs");
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_timeout(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  Task<int> t;
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  const int kid = s.kids[0];
  std::optional<double> when;
  if (s.t2 >= 0) when = loop.time() + s.t2;
  try {
    int v = 0;
    switch (s.mode) {
      case 0:
        if (s.t2 >= 0) {
          v = co_await asyncio::timeout(s.t2, node_main(r, kid));
        } else {
          v = co_await asyncio::timeout(std::nullopt, node_main(r, kid));
        }
        break;
      case 1:
        v = co_await asyncio::timeout_at(when, node_main(r, kid));
        break;
      case 2: {
        auto body = [&](asyncio::Timeout& cm) -> Coro<int> {
          cm.reschedule(loop.time() + s.t1);
          co_return co_await node_main(r, kid);
        };
        v = co_await asyncio::timeout_at(when, body);
        break;
      }
      default:
        t = spawn(r, kid);
        v = co_await asyncio::timeout_at(when, t);
        break;
    }
    check_value(r, id, s, kid, v);
  } catch (...) {
    err = std::current_exception();
  }
  if (t && !t.done()) r.fail_at(id, s, "timeout(task) ended while the task still runs");
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_shield(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  try {
    int v = 0;
    if (s.flag) {
      v = co_await asyncio::shield(node_main(r, s.kids[0]));
    } else {
      v = co_await asyncio::shield(spawn(r, s.kids[0]));
    }
    check_value(r, id, s, s.kids[0], v);
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

/// After wait() or as_completed(): every task is awaited (gather(return_exceptions)), so that
/// each error is looked at; the pending ones are cancelled first when `cancel` is set.
Coro<void> follow_up(Run& r, int id, const Step& s, std::vector<Task<int>> ts, bool cancel,
                     std::exception_ptr& err) {
  if (cancel) {
    for (Task<int>& t : ts) {
      if (!t.done()) t.cancel("follow-up of #" + std::to_string(s.sid));
    }
  }
  try {
    std::vector<asyncio::Outcome<int>> outs =
        co_await asyncio::gather(asyncio::return_exceptions, ts);
    check_outcomes(r, id, s, s.kids, outs);
  } catch (...) {
    if (!err) err = std::current_exception();
  }
  for (const Task<int>& t : ts) {
    if (!t.done()) {
      r.fail_at(id, s, "the follow-up gather(return_exceptions) ended with a child running");
    }
  }
}

Coro<void> op_wait(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  std::vector<Task<int>> ts;
  for (int kid : s.kids) ts.push_back(spawn(r, kid));
  const asyncio::ReturnWhen when = s.mode == 0   ? asyncio::ReturnWhen::all_completed
                                   : s.mode == 1 ? asyncio::ReturnWhen::first_completed
                                                 : asyncio::ReturnWhen::first_exception;
  try {
    asyncio::WaitOptions o;
    if (s.t2 >= 0) o.timeout = std::chrono::duration<double>(s.t2);
    o.return_when = when;
    auto [done, pending] = co_await asyncio::wait(ts, o);
    if (done.size() + pending.size() != ts.size()) r.fail_at(id, s, "wait() lost a task");
    for (const Task<int>& t : done) {
      if (!t.done()) r.fail_at(id, s, "wait() put a running task in `done`");
    }
    for (const Task<int>& t : pending) {
      if (t.done()) r.fail_at(id, s, "wait() put a finished task in `pending`");
    }
    if (s.t2 < 0) {
      if (when == asyncio::ReturnWhen::all_completed && !pending.empty()) {
        r.fail_at(id, s, "wait(all_completed) returned with pending tasks");
      }
      if (when == asyncio::ReturnWhen::first_completed && done.empty()) {
        r.fail_at(id, s, "wait(first_completed) returned with nothing done");
      }
      if (when == asyncio::ReturnWhen::first_exception && !pending.empty()) {
        bool failed = false;
        for (Task<int>& t : done) failed = failed || (!t.cancelled() && t.exception() != nullptr);
        if (!failed) r.fail_at(id, s, "wait(first_exception) returned early without an error");
      }
    }
    r.log(id, "#" + std::to_string(s.sid) + " wait: " + std::to_string(done.size()) + " done, " +
                  std::to_string(pending.size()) + " pending");
  } catch (...) {
    err = std::current_exception();
  }
  co_await follow_up(r, id, s, ts, s.flag || err != nullptr, err);
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_as_completed(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  std::vector<Task<int>> ts;
  std::optional<std::chrono::duration<double>> limit;
  if (s.t2 >= 0) limit = std::chrono::duration<double>(s.t2);
  std::vector<bool> seen(s.kids.size(), false);
  try {
    std::optional<asyncio::AsCompleted<int>> range;
    if (s.flag) {
      std::vector<Coro<int>> cs;
      for (int kid : s.kids) cs.push_back(node_main(r, kid));
      range.emplace(asyncio::as_completed(std::move(cs), limit));
    } else {
      for (int kid : s.kids) ts.push_back(spawn(r, kid));
      range.emplace(asyncio::as_completed(ts, limit));
    }
    auto it = range->begin();
    for (int i = 0; i < s.extra && it != range->end(); ++i) {
      Coro<int> next = *it;
      ++it;
      std::exception_ptr e;
      try {
        const int v = co_await std::move(next);
        // Values are unique per node: find the child that returned it.
        bool found = false;
        for (std::size_t k = 0; k < s.kids.size(); ++k) {
          const std::optional<int>& want = r.results[static_cast<std::size_t>(s.kids[k])];
          if (want && *want == v) {
            if (seen[k])
              r.fail_at(id, s, "as_completed yielded n" + std::to_string(s.kids[k]) + " twice");
            seen[k] = true;
            found = true;
          }
        }
        if (!found) r.fail_at(id, s, "as_completed yielded " + std::to_string(v) + ", no child's");
        r.log(id, "#" + std::to_string(s.sid) + " as_completed " + std::to_string(v));
      } catch (...) {
        e = std::current_exception();
      }
      if (e) {
        const Kind k = kind_of(e);
        if (k == Kind::cancelled && cancelling_now() > base) {
          err = e;
          break;
        }
        settle(r, id, s, e, base);  // (a cancelled child's CancelledError, a child's error)
      }
    }
  } catch (...) {
    if (!err) err = std::current_exception();
  }
  if (!s.flag) co_await follow_up(r, id, s, ts, true, err);
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_task_group(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  std::vector<Task<int>> kids;
  std::vector<int> kid_nodes;
  try {
    auto body = [&](asyncio::TaskGroup& tg) -> Coro<int> {
      std::size_t next = 0;
      auto create = [&](std::size_t upto) {
        for (; next < upto && next < s.kids.size(); ++next) {
          const int kid = s.kids[next];
          try {
            kids.push_back(tg.create_task(node_main(r, kid), task_name(kid)));
            kid_nodes.push_back(kid);
            r.adopt(kids.back(), kid, false, true);
            r.handles[static_cast<std::size_t>(kid)] = kids.back();
          } catch (const asyncio::RuntimeError& e) {
            r.log(id, "#" + std::to_string(s.sid) + " create_task refused: " + e.what());
          }
        }
      };
      create(static_cast<std::size_t>(s.extra));
      for (const Step& b : s.body) co_await exec(r, id, b);
      create(s.kids.size());
      co_return id * 1000 + 900;
    };
    const int v = co_await asyncio::task_group(body);
    if (v != id * 1000 + 900) r.fail_at(id, s, "task_group returned " + std::to_string(v));
    for (std::size_t i = 0; i < kids.size(); ++i) {
      if (!kids[i].done()) continue;  // reported below
      if (kids[i].cancelled()) continue;
      if (kids[i].exception() != nullptr) {
        r.fail_at(id, s,
                  "task_group returned normally but n" + std::to_string(kid_nodes[i]) + " failed");
        continue;
      }
      check_value(r, id, s, kid_nodes[i], kids[i].result());
    }
    r.log(id, "#" + std::to_string(s.sid) + " task_group done");
  } catch (...) {
    err = std::current_exception();
  }
  for (std::size_t i = 0; i < kids.size(); ++i) {
    if (!kids[i].done()) {
      r.fail_at(id, s, "n" + std::to_string(kid_nodes[i]) + " outlived its task_group");
    }
  }
  if (err && kind_of(err) == Kind::group) {
    // Every error in the group must come from a failed child or from the body.
    if (!group_is_clean(err)) r.fail_at(id, s, "unexpected group " + describe_error(err));
  }
  if (err) settle(r, id, s, err, base);
}

Coro<void> acquire_with(Run& /*r*/, const Step& s, asyncio::Lock& lock) {
  switch (s.mode) {
    case 0:
    case 1:
      co_await lock.acquire();
      break;
    case 2:
      co_await asyncio::timeout(s.t2, lock.acquire());
      break;
    default:
      co_await asyncio::wait_for(lock.acquire(), s.t2);
      break;
  }
}

Coro<void> acquire_with(Run& /*r*/, const Step& s, asyncio::Semaphore& sem) {
  switch (s.mode) {
    case 0:
    case 1:
      co_await sem.acquire();
      break;
    case 2:
      co_await asyncio::timeout(s.t2, sem.acquire());
      break;
    default:
      co_await asyncio::wait_for(sem.acquire(), s.t2);
      break;
  }
}

template <class P>
Coro<void> op_section(Run& r, int id, const Step& s, P& prim, int& holders, int limit) {
  const int base = cancelling_now();
  std::exception_ptr err;
  try {
    std::optional<asyncio::ReleaseGuard<P>> guard;
    if (s.mode == 0) {
      guard.emplace(co_await prim.scoped());
    } else {
      co_await acquire_with(r, s, prim);
      guard.emplace(prim);
    }
    Holding hold(r, holders, limit, id, s);
    r.log(id, "#" + std::to_string(s.sid) + " acquired");
    co_await asyncio::sleep(s.t1);
    if (s.flag) throw FuzzError(id);
    if (s.mode == 1) guard->release();  // explicitly, before the Holding goes (it counts only)
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_event_wait(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  asyncio::Event& ev = *r.events[static_cast<std::size_t>(s.res)];
  try {
    if (s.mode == 0) {
      co_await asyncio::timeout(s.t2, ev.wait());
    } else {
      co_await asyncio::wait_for(ev.wait(), s.t2);
    }
    r.log(id, "#" + std::to_string(s.sid) + " event seen");
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_condition_wait(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  const auto res = static_cast<std::size_t>(s.res);
  asyncio::Condition& c = *r.conds[res];
  try {
    auto guard = co_await c.scoped();
    const int target = r.cond_counter[res] + s.count;
    std::exception_ptr werr;
    try {
      auto pred = [&r, res, target] { return r.cond_counter[res] >= target; };
      (void)co_await asyncio::timeout(s.t2, c.wait_for(pred));
      r.log(id, "#" + std::to_string(s.sid) + " condition met");
    } catch (...) {
      werr = std::current_exception();
    }
    // Python: wait() re-acquires the lock before it returns or raises, even when cancelled.
    if (!c.locked()) {
      r.fail_at(id, s, "Condition.wait ended without the lock held");
      (void)guard.owns();
    }
    if (werr) std::rethrow_exception(werr);
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_condition_notify(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  const auto res = static_cast<std::size_t>(s.res);
  asyncio::Condition& c = *r.conds[res];
  try {
    auto guard = co_await c.scoped();
    ++r.cond_counter[res];
    if (s.mode == 0) {
      c.notify();
    } else if (s.mode == 1) {
      c.notify(2);
    } else {
      c.notify_all();
    }
    r.log(id, "#" + std::to_string(s.sid) + " notified");
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_barrier(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  asyncio::Barrier& b = *r.barriers[static_cast<std::size_t>(s.res)];
  try {
    if (s.mode == 2) {
      b.reset();
      r.log(id, "#" + std::to_string(s.sid) + " barrier reset");
    } else if (s.mode == 3) {
      b.abort();
      r.log(id, "#" + std::to_string(s.sid) + " barrier aborted");
    } else {
      const std::size_t index = co_await asyncio::timeout(s.t2, b.wait());
      if (index >= b.parties()) r.fail_at(id, s, "arrival index " + std::to_string(index));
      r.log(id, "#" + std::to_string(s.sid) + " barrier passed " + std::to_string(index));
    }
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base, {Kind::broken_barrier});
}

Coro<void> op_put(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  const auto res = static_cast<std::size_t>(s.res);
  AnyQueue& q = *r.queues[res];
  for (int i = 0; i < s.count; ++i) {
    const int item = r.next_item++;
    std::exception_ptr err;
    try {
      if (s.mode == 0 && r.p.queues[res].maxsize == 0) {
        co_await q.put(item);  // an unbounded queue never blocks a put
      } else if (s.mode == 1) {
        q.put_nowait(item);
      } else {
        co_await asyncio::timeout(s.t2, q.put(item));
      }
      r.put_ok[res].push_back(item);
      r.log(id, "#" + std::to_string(s.sid) + " put " + std::to_string(item));
    } catch (...) {
      err = std::current_exception();
    }
    if (err) {
      const Kind k = kind_of(err);
      if (k == Kind::queue_full || k == Kind::queue_shutdown || k == Kind::timeout) {
        r.log(id, "#" + std::to_string(s.sid) + " put " + std::to_string(item) +
                      " failed: " + describe_error(err));
      } else {
        settle(r, id, s, err, base);
        co_return;
      }
    }
    if (s.t1 > 0) co_await asyncio::sleep(s.t1);
  }
}

Coro<void> op_get(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  const auto res = static_cast<std::size_t>(s.res);
  AnyQueue& q = *r.queues[res];
  for (int i = 0; i < s.count; ++i) {
    std::exception_ptr err;
    try {
      int item = 0;
      if (s.mode == 0) {
        item = co_await asyncio::timeout(s.t2, q.get());
      } else if (s.mode == 1) {
        item = q.get_nowait();
      } else {
        item = co_await asyncio::wait_for(q.get(), s.t2);
      }
      r.got[res].push_back(item);
      q.task_done();
      r.log(id, "#" + std::to_string(s.sid) + " got " + std::to_string(item));
    } catch (...) {
      err = std::current_exception();
    }
    if (err) {
      const Kind k = kind_of(err);
      if (k == Kind::queue_empty || k == Kind::queue_shutdown || k == Kind::timeout) {
        r.log(id, "#" + std::to_string(s.sid) + " get failed: " + describe_error(err));
      } else {
        settle(r, id, s, err, base);
        co_return;
      }
    }
  }
}

Coro<void> op_queue_join(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  try {
    co_await asyncio::timeout(s.t2, r.queues[static_cast<std::size_t>(s.res)]->join());
    r.log(id, "#" + std::to_string(s.sid) + " joined");
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

asyncio::AsyncGenerator<int> fuzz_agen(Run& r, int id, const Step& s) {
  std::optional<asyncio::ReleaseGuard<asyncio::Lock>> held;
  std::optional<Holding> hold;
  const auto res = static_cast<std::size_t>(s.res);
  if (s.flag) {
    held.emplace(co_await r.locks[res]->scoped());
    hold.emplace(r, r.lock_holders[res], 1, id, s);
  }
  for (int i = 0; i < s.count; ++i) {
    if (i == s.extra2) throw FuzzError(id);
    if (s.t1 > 0) co_await asyncio::sleep(s.t1);
    co_yield id * 1000 + 600 + i;
  }
}

Coro<void> op_agen(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  int taken = 0;
  auto check = [&](int v) {
    if (v != id * 1000 + 600 + taken) {
      r.fail_at(
          id, s,
          "async generator yielded " + std::to_string(v) + " as item " + std::to_string(taken));
    }
    ++taken;
  };
  try {
    asyncio::AsyncGenerator<int> g = fuzz_agen(r, id, s);
    if (s.mode == 2) {
      auto fn = [&](int v) -> bool {
        check(v);
        return taken < s.extra;
      };
      if (s.extra > 0) co_await asyncio::async_for(std::move(g), fn);
    } else {
      for (int i = 0; i < s.extra; ++i) {
        std::optional<int> v;
        if (s.mode == 3) {
          v = co_await asyncio::timeout(s.t2, g.next());
        } else {
          v = co_await g.next();
        }
        if (!v) break;
        check(*v);
      }
      if (s.mode == 0) {
        co_await g.aclose();
        if (co_await g.next()) r.fail_at(id, s, "next() after aclose() yielded");
      }
    }
    r.log(id, "#" + std::to_string(s.sid) + " took " + std::to_string(taken) + " items");
  } catch (...) {
    err = std::current_exception();
  }
  if (err) settle(r, id, s, err, base);
}

asyncio::Generator<int> fuzz_gen(int id, int count, int throw_at) {
  for (int i = 0; i < count; ++i) {
    if (i == throw_at) throw FuzzError(id);
    co_yield id * 1000 + 700 + i;
  }
}

void op_gen(Run& r, int id, const Step& s) {
  int taken = 0;
  try {
    for (int v : fuzz_gen(id, s.count, s.extra2)) {
      if (taken >= s.extra) break;
      if (v != id * 1000 + 700 + taken) r.fail_at(id, s, "generator yielded " + std::to_string(v));
      ++taken;
    }
    r.log(id, "#" + std::to_string(s.sid) + " generator gave " + std::to_string(taken));
  } catch (const FuzzError& e) {
    r.log(id, "#" + std::to_string(s.sid) + " generator threw " + e.what());
    if (s.propagate) throw;
  }
}

Coro<void> op_future(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  std::exception_ptr err;
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  asyncio::Future<int> f;
  const int value = id * 1000 + 800;
  const int how = s.mode % 3;
  asyncio::TimerHandle h = loop.call_later(s.t1, [f, &r, id, how, value]() mutable {
    if (f.done() || r.released) return;
    if (how == 0) {
      f.set_result(value);
    } else if (how == 1) {
      f.set_exception(std::make_exception_ptr(FuzzError(id)));
    } else {
      f.cancel("future cancelled by its timer");
    }
  });
  try {
    int v = 0;
    switch (s.mode / 3) {
      case 0:
        v = co_await f;
        break;
      case 1:
        v = co_await asyncio::wait_for(f, s.t2);
        break;
      default:
        v = co_await asyncio::shield(f);
        break;
    }
    if (v != value) r.fail_at(id, s, "the future gave " + std::to_string(v));
    r.log(id, "#" + std::to_string(s.sid) + " future gave " + std::to_string(v));
  } catch (...) {
    err = std::current_exception();
  }
  if (s.flag) h.cancel();
  if (err) settle(r, id, s, err, base);
}

Coro<void> op_await_other(Run& r, int id, const Step& s) {
  const int base = cancelling_now();
  const int nodes = static_cast<int>(r.p.nodes.size());
  const int from = r.p.nodes[static_cast<std::size_t>(id)].end;
  if (from >= nodes) co_return;
  const int x = from + s.count % (nodes - from);
  Task<int> t = r.handles[static_cast<std::size_t>(x)];
  if (!t) {
    r.log(id, "#" + std::to_string(s.sid) + " n" + std::to_string(x) + " has no task");
    co_return;
  }
  std::exception_ptr err;
  try {
    int v = 0;
    bool have = true;
    switch (s.mode) {
      case 0:
        v = co_await t;
        break;
      case 1:
        v = co_await asyncio::wait_for(t, s.t2);
        break;
      case 2:
        v = co_await asyncio::shield(t);
        break;
      default: {
        std::vector<Task<int>> one;
        one.push_back(t);
        std::vector<asyncio::Outcome<int>> outs =
            co_await asyncio::gather(asyncio::return_exceptions, std::move(one));
        std::vector<int> kid;
        kid.push_back(x);
        check_outcomes(r, id, s, kid, outs);  // checks the value too
        have = false;
        break;
      }
    }
    if (have) {
      check_value(r, id, s, x, v);
      r.log(id,
            "#" + std::to_string(s.sid) + " n" + std::to_string(x) + " gave " + std::to_string(v));
    }
  } catch (...) {
    err = std::current_exception();
  }
  if (s.mode != 2 && !t.done()) r.fail_at(id, s, "the await ended while the task still runs");
  if (err) settle(r, id, s, err, base);
}

Coro<void> exec(Run& r, int id, const Step& s) {
  switch (s.op) {
    case Op::sleep:
      co_await asyncio::sleep(s.t1);
      break;
    case Op::raise:
      r.log(id, "#" + std::to_string(s.sid) + " raises");
      throw FuzzError(id);
    case Op::cancel:
      cancel_node(r, id, s.count % static_cast<int>(r.p.nodes.size()), "cancel");
      break;
    case Op::cancel_later: {
      const int nodes = static_cast<int>(r.p.nodes.size());
      const int target = s.count % nodes;
      Run* rp = &r;
      asyncio::EventLoop& loop = asyncio::get_running_loop();
      if (s.mode == 0) {
        loop.call_later(s.t1, [rp, id, target] { cancel_node(*rp, id, target, "timer cancels"); });
        break;
      }
      Task<int>& watched = r.handles[static_cast<std::size_t>(s.extra % nodes)];
      if (s.mode == 2 && watched && !watched.done()) {
        watched.add_done_callback([rp, id, target](asyncio::Future<int>& /*f*/) {
          cancel_node(*rp, id, target, "done callback cancels");
        });
        r.log(id, "#" + std::to_string(s.sid) + " watches n" + std::to_string(s.extra % nodes));
        break;
      }
      loop.call_soon([rp, id, target] { cancel_node(*rp, id, target, "call_soon cancels"); });
      break;
    }
    case Op::spawn:
      (void)spawn(r, s.kids[0], true);
      break;
    case Op::await_task:
      co_await op_await_task(r, id, s);
      break;
    case Op::await_coro:
      co_await op_await_coro(r, id, s);
      break;
    case Op::gather:
      if ((s.mode & 2) != 0) {
        co_await op_gather<Coro<int>>(r, id, s);
      } else {
        co_await op_gather<Task<int>>(r, id, s);
      }
      break;
    case Op::wait_for:
      co_await op_wait_for(r, id, s);
      break;
    case Op::timeout:
      co_await op_timeout(r, id, s);
      break;
    case Op::shield:
      co_await op_shield(r, id, s);
      break;
    case Op::wait:
      co_await op_wait(r, id, s);
      break;
    case Op::as_completed:
      co_await op_as_completed(r, id, s);
      break;
    case Op::task_group:
      co_await op_task_group(r, id, s);
      break;
    case Op::lock: {
      const auto res = static_cast<std::size_t>(s.res);
      co_await op_section(r, id, s, *r.locks[res], r.lock_holders[res], 1);
      break;
    }
    case Op::semaphore: {
      const auto res = static_cast<std::size_t>(s.res);
      co_await op_section(r, id, s, *r.sems[res], r.sem_holders[res], r.p.semaphores[res]);
      break;
    }
    case Op::event_wait:
      co_await op_event_wait(r, id, s);
      break;
    case Op::event_set: {
      asyncio::Event& ev = *r.events[static_cast<std::size_t>(s.res)];
      if (s.mode == 0) {
        ev.set();
      } else {
        ev.clear();
      }
      r.log(id, "#" + std::to_string(s.sid) + (s.mode == 0 ? " set" : " clear"));
      break;
    }
    case Op::condition_wait:
      co_await op_condition_wait(r, id, s);
      break;
    case Op::condition_notify:
      co_await op_condition_notify(r, id, s);
      break;
    case Op::barrier:
      co_await op_barrier(r, id, s);
      break;
    case Op::put:
      co_await op_put(r, id, s);
      break;
    case Op::get:
      co_await op_get(r, id, s);
      break;
    case Op::queue_shutdown: {
      const auto res = static_cast<std::size_t>(s.res);
      if (s.mode == 1) {
        // The items in the queue now are those put and not got: they are dropped.
        std::vector<int> in = r.put_ok[res];
        std::vector<int> out = r.got[res];
        out.insert(out.end(), r.dropped[res].begin(), r.dropped[res].end());
        std::sort(in.begin(), in.end());
        std::sort(out.begin(), out.end());
        const std::size_t known = r.dropped[res].size();
        std::set_difference(in.begin(), in.end(), out.begin(), out.end(),
                            std::back_inserter(r.dropped[res]));
        if (r.queues[res]->qsize() != r.dropped[res].size() - known) {
          r.fail_at(id, s,
                    "the queue holds " + std::to_string(r.queues[res]->qsize()) +
                        " items, not the " + std::to_string(r.dropped[res].size() - known) +
                        " put and not got");
        }
      }
      r.queues[res]->shutdown(s.mode == 1);
      if (r.queues[res]->qsize() != 0 && s.mode == 1) {
        r.fail_at(id, s, "shutdown(immediate) left items in the queue");
      }
      r.log(id, "#" + std::to_string(s.sid) +
                    (s.mode == 1 ? " shut the queue down (immediate)" : " shut the queue down"));
      break;
    }
    case Op::queue_join:
      co_await op_queue_join(r, id, s);
      break;
    case Op::agen:
      co_await op_agen(r, id, s);
      break;
    case Op::gen:
      op_gen(r, id, s);
      break;
    case Op::future:
      co_await op_future(r, id, s);
      break;
    case Op::await_other:
      co_await op_await_other(r, id, s);
      break;
    case Op::count_:
      break;
  }
}

Coro<int> node_main(Run& r, int id) {
  const Node& n = r.p.nodes[static_cast<std::size_t>(id)];
  const asyncio::TaskRef me = asyncio::current_task();
  // (A task named "n<k>" is one of this file's, adopted when it was made: this node runs inline
  // in it, or is its root. Others were made by a combinator for this node's coroutine.)
  r.adopt(me, id, n.leaky, me.get_name().rfind('n', 0) == 0);
  r.node_task[static_cast<std::size_t>(id)] = me;
  ++r.nodes_run;
  r.log(id, "start");
  int steps = 0;
  bool swallowed = false;
  std::exception_ptr err;
  try {
    for (const Step& s : n.steps) {
      try {
        co_await exec(r, id, s);
      } catch (const asyncio::CancelledError& c) {
        if (!n.swallow || swallowed) throw;
        swallowed = true;
        // Half of them also withdraw the request, as Python asks (Task.uncancel()).
        const bool withdraw = id % 2 == 0;
        r.log(id, std::string(withdraw ? "swallows and withdraws" : "swallows") + " cancelled(" +
                      std::string(c.message()) + ")");
        if (withdraw) (void)asyncio::current_task().uncancel();
      }
      ++steps;
    }
  } catch (...) {
    err = std::current_exception();
  }
  if (r.p.weak) {
    // Forget the task: from now on only the library and the steps that await it hold it.
    r.node_task[static_cast<std::size_t>(id)] = asyncio::TaskRef();
    r.handles[static_cast<std::size_t>(id)] = Task<int>();
  }
  if (err) {
    const Kind k = kind_of(err);
    if (k != Kind::cancelled && k != Kind::fuzz && k != Kind::timeout &&
        !(k == Kind::group && group_is_clean(err))) {
      r.fail("n" + std::to_string(id) + " ended with " + describe_error(err));
    }
    r.log(id, "ends with " + describe_error(err));
    std::rethrow_exception(err);
  }
  const int v = id * 1000 + steps;
  r.results[static_cast<std::size_t>(id)] = v;
  r.returned_cancelling[static_cast<std::size_t>(id)] = me.cancelling() > 0;
  r.log(id, "returns " + std::to_string(v));
  co_return v;
}

// ---- the main task: run the root, wait for everything, check, release ------------------------

constexpr double kRootLimit = 20000;     // virtual seconds
constexpr double kQuiesceLimit = 20000;  // virtual seconds

int semaphore_value(const asyncio::Semaphore& s) {
  const std::string repr = s.repr();
  const std::size_t at = repr.find("value:");
  if (at == std::string::npos) return -1;  // locked
  return std::atoi(repr.c_str() + at + 6);
}

Coro<void> check_end_state(Run& r) {
  const std::vector<asyncio::TaskRef> alive = asyncio::all_tasks();
  if (alive.size() != 1 || !(alive[0] == asyncio::current_task())) {
    r.fail(std::to_string(alive.size() - 1) + " tasks besides main are not done at the end");
  }
  for (std::size_t i = 0; i < r.locks.size(); ++i) {
    if (r.locks[i]->locked()) r.fail("lock " + std::to_string(i) + " is left held");
    if (r.lock_holders[i] != 0) r.fail("lock " + std::to_string(i) + " holder count off");
  }
  for (std::size_t i = 0; i < r.sems.size(); ++i) {
    const int v = semaphore_value(*r.sems[i]);
    if (v != r.p.semaphores[i]) {
      r.fail("semaphore " + std::to_string(i) + " ends at " + r.sems[i]->repr() +
             ", not value:" + std::to_string(r.p.semaphores[i]));
    }
    if (r.sem_holders[i] != 0) r.fail("semaphore " + std::to_string(i) + " holder count off");
  }
  for (std::size_t i = 0; i < r.conds.size(); ++i) {
    if (r.conds[i]->locked()) r.fail("condition " + std::to_string(i) + " lock is left held");
  }
  for (std::size_t i = 0; i < r.barriers.size(); ++i) {
    if (r.barriers[i]->n_waiting() != 0) {
      r.fail("barrier " + std::to_string(i) + " has " + std::to_string(r.barriers[i]->n_waiting()) +
             " waiting at the end");
    }
  }
  for (std::size_t i = 0; i < r.queues.size(); ++i) {
    AnyQueue& q = *r.queues[i];
    std::vector<int> taken = r.got[i];
    taken.insert(taken.end(), r.dropped[i].begin(), r.dropped[i].end());
    int guard = 0;
    while (q.qsize() > 0 && guard++ < 100000) {
      taken.push_back(q.get_nowait());
      q.task_done();
    }
    std::vector<int> put = r.put_ok[i];
    std::sort(put.begin(), put.end());
    std::sort(taken.begin(), taken.end());
    if (put != taken) {
      std::string what = "queue " + std::to_string(i) + " does not conserve items: put";
      for (int x : put) what += " " + std::to_string(x);
      what += "; got, dropped or left";
      for (int x : taken) what += " " + std::to_string(x);
      r.fail(what);
    }
    std::exception_ptr err;
    try {
      co_await asyncio::wait_for(q.join(), 1.0);
    } catch (...) {
      err = std::current_exception();
    }
    if (err)
      r.fail("queue " + std::to_string(i) + ": join() after draining: " + describe_error(err));
  }
}

Coro<void> fuzz_main(Run& r) {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  loop.slow_callback_duration = 1e9;  // real time is not what this test is about
  Run* rp = &r;
  loop.set_exception_handler([rp](asyncio::EventLoop& /*loop*/,
                                  const asyncio::ExceptionContext& ctx) { rp->on_report(ctx); });

  Task<int> root = asyncio::create_task(node_main(r, 0), task_name(0));
  r.adopt(root, 0, false, true);
  {
    std::vector<Task<int>> one;
    one.push_back(root);
    // The result is discarded at once, as Python's `await asyncio.wait(...)` often is (this
    // fuzzer found ~WaitCore touching tasks freed with a discarded result: Wait.Discarded...).
    (void)co_await asyncio::wait(std::move(one),
                                 {.timeout = std::chrono::duration<double>(kRootLimit)});
  }
  if (!root.done()) {
    r.fail("hang: the root task is not done after " + fuzz::detail::fmt_time(kRootLimit) +
           " virtual seconds; task tree:\n" + asyncio::format_task_tree());
  }
  // Everything the root left running (fire-and-forget tasks, shielded ones, gather's other
  // children) must finish by itself.
  const double deadline = loop.time() + kQuiesceLimit;
  bool hung = false;
  const asyncio::TaskRef me = asyncio::current_task();
  for (int round = 0; round < 10000; ++round) {
    std::vector<asyncio::TaskRef> pending;
    for (const asyncio::TaskRef& t : asyncio::all_tasks()) {
      if (!(t == me)) pending.push_back(t);
    }
    if (pending.empty()) break;
    if (loop.time() >= deadline) {
      hung = true;
      break;
    }
    auto res = co_await asyncio::wait(
        std::move(pending), {.timeout = std::chrono::duration<double>(deadline - loop.time()),
                             .return_when = asyncio::ReturnWhen::first_completed});
    (void)res;
  }
  if (hung) {
    r.fail("hang: tasks still running " + fuzz::detail::fmt_time(kQuiesceLimit) +
           " virtual seconds after the root ended; task tree:\n" + asyncio::format_task_tree());
    for (int round = 0; round < 3; ++round) {
      std::vector<asyncio::TaskRef> pending;
      for (asyncio::TaskRef& t : asyncio::all_tasks()) {
        if (!(t == me)) {
          t.cancel("fuzzer clean-up");
          pending.push_back(t);
        }
      }
      if (pending.empty()) break;
      auto res = co_await asyncio::wait(std::move(pending),
                                        {.timeout = std::chrono::duration<double>(60)});
      (void)res;
    }
  }
  if (root.done()) {
    if (root.cancelled()) {
      r.log(0, "root cancelled");
    } else if (std::exception_ptr e = root.exception()) {
      r.log(0, "root failed: " + describe_error(e));
    } else {
      const int v = root.result();
      if (!r.results[0] || *r.results[0] != v) r.fail("root returned a value it did not make");
      r.log(0, "root returned " + std::to_string(v));
    }
  }
  if (!hung) co_await check_end_state(r);

  // Drop every handle while the loop runs: in debug mode, failed tasks whose error nobody
  // looked at are reported now (one by one, in registration order).
  r.released = true;
  root = Task<int>();
  for (asyncio::TaskRef& t : r.node_task) t = asyncio::TaskRef();
  for (Task<int>& t : r.handles) t = Task<int>();
  for (asyncio::TaskRef& t : r.tasks) t = asyncio::TaskRef();
  co_await asyncio::sleep(0);
  co_await asyncio::sleep(0);
}

// ---- running a seed ----------------------------------------------------------------------------

struct SeedResult {
  std::vector<std::string> failures;
  std::string trace;
  std::size_t nodes = 0;
  std::size_t nodes_run = 0;
  std::size_t tasks = 0;
  std::size_t expected_reports = 0;
};

std::uint64_t shuffle_seed_of(std::uint64_t seed) {
  const std::uint64_t s = fuzz::mix(seed ^ 0x53485546464c45ULL);
  return s == 0 ? 1 : s;
}

SeedResult run_program(const Program& p, bool shuffle) {
  Run r(p, shuffle);
  asyncio::RunOptions options{.debug = p.debug, .virtual_time = true};
  if (shuffle) set_shuffle_seed(options, shuffle_seed_of(p.seed));
  try {
    asyncio::run(fuzz_main(r), options);
  } catch (...) {
    r.fail("asyncio::run threw " + describe_error(std::current_exception()));
  }
  SeedResult out;
  for (const Report& rep : r.reports) {
    if (rep.message.rfind("Executing ", 0) == 0) continue;  // a slow step (real time): ignore
    if (rep.message == "Task exception was never retrieved" && rep.known && rep.leaky) {
      ++out.expected_reports;
      r.trace += "report (expected): n" + std::to_string(rep.node) + " " + rep.error + "\n";
      continue;
    }
    std::string what = "unexpected report \"" + rep.message + "\"";
    if (rep.known) what += " for the task of n" + std::to_string(rep.node);
    if (!rep.error.empty()) what += " (" + rep.error + ")";
    if (rep.message == "Task exception was never retrieved" && rep.known) {
      what += ": a false report, that error was looked at";
    }
    r.fail(what);
  }
  out.failures = std::move(r.failures);
  out.trace = std::move(r.trace);
  out.nodes = p.nodes.size();
  out.nodes_run = r.nodes_run;
  out.tasks = r.tasks.size();
  return out;
}

SeedResult run_seed(std::uint64_t seed, bool shuffle) {
  const Program p = fuzz::generate(seed);
  return run_program(p, shuffle);
}

// ---- crash notes and the real-time watchdog ----------------------------------------------------

char g_note[256];
std::atomic<std::size_t> g_note_len{0};

void note_seed(std::uint64_t seed, bool shuffle) {
  const int n = std::snprintf(g_note, sizeof g_note,
                              "\n*** cancel fuzzer: this happened in seed 0x%016llx (shuffle %s); "
                              "replay it alone with ASYNCIO_FUZZ_SEED=0x%016llx ***\n",
                              static_cast<unsigned long long>(seed), shuffle ? "on" : "off",
                              static_cast<unsigned long long>(seed));
  g_note_len.store(n > 0 ? static_cast<std::size_t>(n) : 0);
}

void write_note() {
  const std::size_t n = g_note_len.exchange(0);
  if (n > 0) {
    const ssize_t w = ::write(2, g_note, n);
    (void)w;
  }
}

extern "C" void fuzz_on_signal(int sig) {
  write_note();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

extern "C" void fuzz_on_death() {
  write_note();
}

void install_crash_notes() {
  static bool done = false;
  if (done) return;
  done = true;
  std::signal(SIGABRT, fuzz_on_signal);
#ifdef FUZZ_HAVE_DEATH_CALLBACK
  __sanitizer_set_death_callback(fuzz_on_death);
#else
  std::signal(SIGSEGV, fuzz_on_signal);
  std::signal(SIGBUS, fuzz_on_signal);
#endif
}

/// Aborts the process (after printing the seed) when one run takes longer than `limit` of real
/// time: a run that never ends (a livelock in the loop) would otherwise hang the test.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit) : limit_(limit), thread_([this] { watch(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm() {
    std::lock_guard lock(mu_);
    started_ = std::chrono::steady_clock::now();
    armed_ = true;
  }
  void disarm() {
    std::lock_guard lock(mu_);
    armed_ = false;
  }

 private:
  void watch() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (armed_ && std::chrono::steady_clock::now() - started_ > limit_) {
        std::fprintf(stderr, "\ncancel fuzzer: a run took more than %lld s of real time\n",
                     static_cast<long long>(limit_.count()));
        write_note();
        std::abort();
      }
    }
  }

  std::chrono::seconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool armed_ = false;
  std::chrono::steady_clock::time_point started_;
  std::thread thread_;
};

// ---- configuration from the environment -------------------------------------------------------

std::optional<std::uint64_t> env_u64(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  char* end = nullptr;
  const unsigned long long x = std::strtoull(v, &end, 0);  // 0x... or decimal
  if (end == v || *end != '\0') {
    ADD_FAILURE() << name << "=" << v << " is not a number";
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(x);
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

/// This executable's path, for the replay command.
std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "stress_cancel_fuzz_test";
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string hex(std::uint64_t x) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(x));
  return buf;
}

// ---- shrinking a failing program ---------------------------------------------------------------

/// A failure message with its numbers masked: what a smaller program must still fail with.
std::string signature_of(const std::string& failure) {
  std::string out;
  for (const char c : failure) {
    if (c >= '0' && c <= '9') {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += c;
    }
  }
  return out;
}

/// Runs `p` in a child process (so that a crash or a sanitizer report ends only the child) and
/// returns the signature of its first failure: "" when it passes, "crash" when it dies.
std::string signature_in_child(const Program& p, bool shuffle) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe() failed";
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) return "fork() failed";
  if (pid == 0) {
    ::close(fds[0]);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::alarm(300);
    const SeedResult res = run_program(p, shuffle);
    const std::string sig = res.failures.empty() ? std::string() : signature_of(res.failures[0]);
    const ssize_t w = ::write(fds[1], sig.data(), sig.size());
    (void)w;
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string sig;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) sig.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "crash";
  return sig;
}

/// Greedily removes steps (and plainer-izes them) while the program still fails the same way.
Program shrink(Program p, bool shuffle, const std::string& target) {
  std::size_t i = 0;
  bool progress = false;
  for (int runs = 0; runs < 5000; ++runs) {
    std::vector<Program> cs = fuzz::shrink_candidates(p);
    if (i >= cs.size()) {
      if (!progress) break;
      i = 0;
      progress = false;
      continue;
    }
    if (signature_in_child(cs[i], shuffle) == target) {
      p = std::move(cs[i]);
      progress = true;
    } else {
      ++i;
    }
  }
  return p;
}

// ---- the tests ---------------------------------------------------------------------------------

TEST(CancelFuzz, SplitMix64IsStable) {
  fuzz::Rng g(0);
  EXPECT_EQ(g.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(g.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(g.next(), 0x06c45d188009454fULL);
}

TEST(CancelFuzz, GeneratorUsesEveryOperation) {
  std::vector<int> seen(static_cast<std::size_t>(Op::count_), 0);
  std::size_t nodes = 0;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    const Program p = fuzz::generate(seed);
    nodes += p.nodes.size();
    std::vector<const std::vector<Step>*> todo;
    for (const Node& n : p.nodes) todo.push_back(&n.steps);
    while (!todo.empty()) {
      const std::vector<Step>* steps = todo.back();
      todo.pop_back();
      for (const Step& s : *steps) {
        ++seen[static_cast<std::size_t>(s.op)];
        todo.push_back(&s.body);
      }
    }
    EXPECT_EQ(fuzz::describe(p), fuzz::describe(fuzz::generate(seed)));
  }
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_GT(seen[i], 0) << fuzz::op_name(static_cast<Op>(i)) << " is never generated";
  }
  EXPECT_GT(nodes, 300U * 5);
}

TEST(CancelFuzz, ReplayIsExact) {
  install_crash_notes();
  for (const std::uint64_t seed : {1ULL, 2ULL, 0xc0ffeeULL, 0xdeadbeefcafeULL}) {
    for (const bool shuffle : {false, true}) {
      note_seed(seed, shuffle);
      const SeedResult a = run_seed(seed, shuffle);
      const SeedResult b = run_seed(seed, shuffle);
      EXPECT_FALSE(a.trace.empty());
      EXPECT_EQ(a.trace, b.trace) << "seed " << hex(seed) << " (shuffle "
                                  << (shuffle ? "on" : "off") << ") does not replay exactly";
    }
  }
}

TEST(CancelFuzz, Seeds) {
  install_crash_notes();
  const std::optional<std::uint64_t> single = env_u64("ASYNCIO_FUZZ_SEED");
  if (single && env_flag("ASYNCIO_FUZZ_SHRINK")) {
    // Before any thread starts: each attempt runs in a fork()ed child.
    const Program p = fuzz::generate(*single);
    for (const bool shuffle : {false, true}) {
      const std::string target = signature_in_child(p, shuffle);
      std::printf("shuffle %s: %s\n", shuffle ? "on" : "off",
                  target.empty() ? "passes" : ("fails: " + target).c_str());
      if (target.empty()) continue;
      const Program small = shrink(p, shuffle, target);
      ADD_FAILURE() << "seed " << hex(*single) << " (shuffle " << (shuffle ? "on" : "off")
                    << ") fails with: " << target << "\nshrunk to:\n"
                    << fuzz::describe(small);
    }
    return;
  }
  const std::uint64_t start = single ? *single : env_u64("ASYNCIO_FUZZ_START").value_or(0);
  const std::uint64_t count = single ? 1 : env_u64("ASYNCIO_FUZZ_SEEDS").value_or(500);
  const bool verbose = single.has_value() || env_flag("ASYNCIO_FUZZ_VERBOSE");
  const auto limit = std::chrono::seconds(env_u64("ASYNCIO_FUZZ_SEED_TIMEOUT").value_or(120));
  Watchdog watchdog(limit);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> failed;
  std::size_t runs = 0;
  std::size_t tasks = 0;
  std::size_t nodes = 0;
  std::size_t nodes_run = 0;
  std::size_t expected_reports = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t seed = start + i;
    const Program p = fuzz::generate(seed);
    if (single) std::printf("%s", fuzz::describe(p).c_str());
    for (const bool shuffle : {false, true}) {
      if (shuffle && !kShuffleAvailable) continue;
      note_seed(seed, shuffle);
      watchdog.arm();
      const SeedResult res = run_program(p, shuffle);
      watchdog.disarm();
      ++runs;
      tasks += res.tasks;
      nodes += res.nodes;
      nodes_run += res.nodes_run;
      expected_reports += res.expected_reports;
      if (verbose && single) {
        std::printf("---- shuffle %s: %zu tasks; trace:\n%s", shuffle ? "on" : "off", res.tasks,
                    res.trace.c_str());
      }
      if (res.failures.empty()) continue;
      std::string msg = "seed " + hex(seed) + " failed (shuffle " + (shuffle ? "on" : "off") +
                        "): " + res.failures[0];
      for (std::size_t k = 1; k < res.failures.size() && k < 8; ++k) {
        msg += "\n    and: " + res.failures[k];
      }
      msg += "\n    replay: ASYNCIO_FUZZ_SEED=" + hex(seed) + " " + self_path() +
             " --gtest_filter=CancelFuzz.Seeds";
      std::printf("%s\n", msg.c_str());
      if (verbose && !single) std::printf("%s", fuzz::describe(p).c_str());
      failed.push_back(msg);
    }
    g_note_len.store(0);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "cancel fuzzer: seeds %s..%s, %zu runs (shuffle mode %s), %zu of %zu nodes ran, %zu "
      "tasks, %zu expected 'never retrieved' reports, %.1f s, %zu failed\n",
      hex(start).c_str(), hex(start + count - 1).c_str(), runs,
      kShuffleAvailable ? "on and off" : "unavailable", nodes_run, nodes, tasks, expected_reports,
      secs, failed.size());
  EXPECT_TRUE(failed.empty()) << failed.size() << " failing runs; the first:\n" << failed[0];
}

}  // namespace
