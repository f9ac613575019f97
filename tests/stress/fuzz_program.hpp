// fuzz_program.hpp - the programs of the cancellation fuzzer (cancel_fuzz_test.cpp): a seeded
// generator, the program as plain data, and a readable listing of it.
//
// A program is a tree of nodes. Each node is the body of a coroutine (run as a task or inline,
// as its parent's step decides): a list of steps. A step sleeps, throws, cancels another node's
// task, uses a synchronisation primitive or a queue, consumes a generator, or composes child
// nodes with one of the library's combinators. The whole program is drawn from the seed before
// anything runs, so a seed always means the same program, on every standard library: the only
// randomness is splitmix64 below (no std:: distributions, whose output differs between
// libstdc++ and libc++).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace fuzz {

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and the same everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : s_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31U);
  }
  /// In [0, n), n > 0 (the modulo bias is irrelevant here).
  std::uint32_t below(std::uint32_t n) noexcept { return static_cast<std::uint32_t>(next() % n); }
  /// In [lo, hi].
  int between(int lo, int hi) noexcept {
    return lo + static_cast<int>(below(static_cast<std::uint32_t>(hi - lo + 1)));
  }
  /// True with probability num/den.
  bool chance(std::uint32_t num, std::uint32_t den) noexcept { return below(den) < num; }

 private:
  std::uint64_t s_;
};

/// One splitmix64 output for `x`: derives independent seeds (the shuffle seed) from a seed.
inline std::uint64_t mix(std::uint64_t x) noexcept {
  Rng r(x);
  return r.next();
}

/// What a step does. The comment says how the runner reads the step's fields.
enum class Op : std::uint8_t {
  sleep,             // sleep(t1)
  raise,             // throw FuzzError
  cancel,            // cancel the task running node (count % nodes)
  cancel_later,      // the same from a callback: mode 0 call_later(t1), 1 call_soon, 2 a done
                     // callback of node (extra % nodes)'s task (call_soon if it has none)
  spawn,             // create_task(kid), never awaited (fire and forget)
  await_task,        // co_await create_task(kid) (flag: co_await std::move(task))
  await_coro,        // co_await kid's coroutine, inline
  gather,            // gather(kids): flag return_exceptions; mode bit 0 tuple, bit 1 coroutines
  wait_for,          // wait_for(kid, t2): flag coroutine
  timeout,           // mode 0 timeout(t2, coro), 1 timeout_at, 2 body lambda rescheduling to t1,
                     // 3 timeout(t2, task); t2 < 0: no deadline
  shield,            // shield(kid): flag coroutine
  wait,              // wait(tasks, {t2, return_when = mode}); flag: cancel the pending ones
  as_completed,      // as_completed(kids, t2), consume `extra` results; flag: coroutines
  task_group,        // task_group: the first `extra` kids are created before the body steps,
                     // the others after them
  lock,              // lock res: mode 0 scoped, 1 acquire, 2 timeout(t2, acquire), 3 wait_for;
                     // hold for t1; flag: throw while holding
  semaphore,         // the same with semaphore res
  event_wait,        // event res: mode 0 timeout(t2, wait()), 1 wait_for(wait(), t2)
  event_set,         // event res: mode 0 set(), 1 clear()
  condition_wait,    // condition res: wait_for(counter >= now + count) under timeout(t2)
  condition_notify,  // condition res: ++counter, then mode 0 notify(), 1 notify(2), 2 notify_all()
  barrier,           // barrier res: mode 0/1 timeout(t2, wait()), 2 reset(), 3 abort()
  put,               // queue res: put `count` items: mode 0 put, 1 put_nowait, 2 timeout(t2, put)
  get,               // queue res: get `count` items: mode 0 timeout(t2, get), 1 get_nowait,
                     // 2 wait_for(get, t2)
  queue_shutdown,    // queue res: shutdown(), mode 1 shutdown(immediate)
  queue_join,        // queue res: timeout(t2, join())
  agen,              // an AsyncGenerator of `count` items (throws at item `extra2`, flag: holds
                     // lock res across its yields); the step takes `extra` items: mode 0 next()
                     // then aclose(), 1 next() then drop it, 2 async_for, 3 timeout(t2, next())
  gen,               // a Generator of `count` items (throws at `extra2`), `extra` taken
  future,            // a Future completed by call_later(t1): mode % 3 = 0 result, 1 exception,
                     // 2 cancel; mode / 3 = 0 co_await, 1 wait_for(t2), 2 shield;
                     // flag: cancel the timer afterwards
  await_other,       // await the task of another node, one that runs after this node's subtree
                     // in the listing (so awaits never form a cycle): node end + count % rest;
                     // mode 0 co_await, 1 wait_for(t2), 2 shield, 3 gather(return_exceptions)
  count_
};

inline const char* op_name(Op op) {
  static const char* const kNames[] = {
      "sleep",      "raise",      "cancel",       "cancel_later",   "spawn",
      "await_task", "await_coro", "gather",       "wait_for",       "timeout",
      "shield",     "wait",       "as_completed", "task_group",     "lock",
      "semaphore",  "event_wait", "event_set",    "condition_wait", "condition_notify",
      "barrier",    "put",        "get",          "queue_shutdown", "queue_join",
      "agen",       "gen",        "future",       "await_other"};
  static_assert(sizeof kNames / sizeof kNames[0] == static_cast<std::size_t>(Op::count_));
  return kNames[static_cast<std::size_t>(op)];
}

/// One step of a node's body. Which fields mean what depends on `op` (see Op).
struct Step {
  Op op = Op::sleep;
  int sid = 0;             ///< number of the step in the program (for messages)
  int mode = 0;            ///< variant of the operation
  int res = 0;             ///< which lock, queue, ... of the program
  int count = 0;           ///< items, a cancel target, a counter increment (see Op)
  int extra = 0;           ///< items to consume, a watched node, kids made first (see Op)
  int extra2 = -1;         ///< the item that throws (-1: none)
  bool flag = false;       ///< op-specific switch
  bool propagate = false;  ///< errors go on to the caller instead of stopping here
  double t1 = 0;           ///< a duration
  double t2 = -1;          ///< a time-out (< 0: none)
  std::vector<int> kids;   ///< child nodes
  std::vector<Step> body;  ///< task_group: the body's steps
};

/// A coroutine body.
struct Node {
  int id = 0;
  int depth = 0;
  int end = 0;           ///< one past its last descendant: the subtree is [id, end)
  bool swallow = false;  ///< swallows the first CancelledError that reaches its step loop
  bool leaky = false;    ///< nobody may look at its error (a debug-mode report is expected)
  std::vector<Step> steps;
};

struct QueueSpec {
  int kind = 0;  ///< 0 Queue, 1 LifoQueue, 2 PriorityQueue
  int maxsize = 0;
};

struct Program {
  std::uint64_t seed = 0;
  bool debug = false;
  /// The runner keeps no handle to a task of its own once the task's node has ended, so that
  /// tasks die when the library drops them (else: every handle is kept to the end).
  bool weak = false;
  std::vector<Node> nodes;  ///< nodes[0] is the root
  int locks = 2;
  int events = 2;
  int conditions = 1;
  std::vector<int> semaphores;  ///< initial values
  std::vector<bool> bounded;    ///< BoundedSemaphore?
  std::vector<int> barriers;    ///< parties
  std::vector<QueueSpec> queues;
  int steps = 0;
};

/// Size limits of the generated programs.
struct Limits {
  int max_nodes = 48;
  int max_depth = 4;
  int max_steps = 5;
};

namespace detail {

class Builder {
 public:
  Builder(std::uint64_t seed, Limits limits) : g_(mix(seed)), lim_(limits) { p_.seed = seed; }

  Program build() {
    p_.debug = g_.chance(1, 2);
    p_.weak = g_.chance(1, 2);
    for (int i = 0; i < 2; ++i) {
      p_.semaphores.push_back(g_.between(1, 3));
      p_.bounded.push_back(i == 1 || g_.chance(1, 2));
    }
    p_.barriers.push_back(g_.between(2, 3));
    for (int i = 0; i < 2; ++i) {
      p_.queues.push_back(QueueSpec{g_.between(0, 2), g_.chance(1, 2) ? 0 : g_.between(1, 3)});
    }
    budget_ = g_.between(8, lim_.max_nodes);
    (void)make_node(0, false);
    return std::move(p_);
  }

 private:
  int make_node(int depth, bool leaky) {
    const int id = static_cast<int>(p_.nodes.size());
    p_.nodes.emplace_back();
    --budget_;
    Node n;
    n.id = id;
    n.depth = depth;
    n.leaky = leaky;
    n.swallow = g_.chance(1, 16);
    // The root gets more steps, so that most programs grow past their first error.
    const int steps =
        depth == 0 ? g_.between(3, lim_.max_steps + 2) : g_.between(1, lim_.max_steps);
    for (int i = 0; i < steps; ++i) n.steps.push_back(make_step(depth));
    n.end = static_cast<int>(p_.nodes.size());
    p_.nodes[static_cast<std::size_t>(id)] = std::move(n);
    return id;
  }

  double duration() {
    const std::uint32_t k = g_.below(10);
    if (k == 0) return 0;
    if (k < 8) return 0.25 * g_.between(1, 8);  // a coarse grid: many deadlines coincide
    return g_.between(1, 3000) / 1000.0;
  }
  double time_limit() { return g_.chance(1, 6) ? 0 : duration() + 0.25 * g_.between(0, 6); }
  double maybe_time_limit() { return g_.chance(1, 4) ? -1 : time_limit(); }

  Op pick_op(bool can_nest) {
    struct W {
      Op op;
      int w;
    };
    static const W kWeights[] = {{Op::sleep, 14},
                                 {Op::raise, 3},
                                 {Op::cancel, 4},
                                 {Op::cancel_later, 4},
                                 {Op::spawn, 3},
                                 {Op::await_task, 5},
                                 {Op::await_coro, 3},
                                 {Op::gather, 7},
                                 {Op::wait_for, 5},
                                 {Op::timeout, 6},
                                 {Op::shield, 3},
                                 {Op::wait, 4},
                                 {Op::as_completed, 4},
                                 {Op::task_group, 6},
                                 {Op::lock, 4},
                                 {Op::semaphore, 4},
                                 {Op::event_wait, 3},
                                 {Op::event_set, 3},
                                 {Op::condition_wait, 2},
                                 {Op::condition_notify, 3},
                                 {Op::barrier, 3},
                                 {Op::put, 4},
                                 {Op::get, 4},
                                 {Op::queue_shutdown, 1},
                                 {Op::queue_join, 1},
                                 {Op::agen, 3},
                                 {Op::gen, 1},
                                 {Op::future, 3},
                                 {Op::await_other, 4}};
    int total = 0;
    for (const W& w : kWeights) total += w.w;
    int x = static_cast<int>(g_.below(static_cast<std::uint32_t>(total)));
    Op op = Op::sleep;
    for (const W& w : kWeights) {
      if (x < w.w) {
        op = w.op;
        break;
      }
      x -= w.w;
    }
    if (!can_nest && nests(op)) op = g_.chance(1, 2) ? Op::sleep : Op::cancel;
    return op;
  }
  static bool nests(Op op) {
    switch (op) {
      case Op::spawn:
      case Op::await_task:
      case Op::await_coro:
      case Op::gather:
      case Op::wait_for:
      case Op::timeout:
      case Op::shield:
      case Op::wait:
      case Op::as_completed:
      case Op::task_group:
        return true;
      default:
        return false;
    }
  }

  /// Up to `n` children (at least one: the caller checked the budget).
  std::vector<int> kids(int depth, int n, bool leaky = false) {
    std::vector<int> out;
    for (int i = 0; i < n && (i == 0 || budget_ > 0); ++i)
      out.push_back(make_node(depth + 1, leaky));
    return out;
  }

  Step make_step(int depth) {
    Step s;
    s.sid = p_.steps++;
    s.op = pick_op(depth < lim_.max_depth && budget_ > 0);
    s.propagate = g_.chance(1, 3);
    switch (s.op) {
      case Op::sleep:
        s.t1 = duration();
        break;
      case Op::raise:
        break;
      case Op::cancel:
        s.count = static_cast<int>(g_.below(1U << 16U));
        break;
      case Op::cancel_later:
        s.mode = g_.between(0, 2);
        s.count = static_cast<int>(g_.below(1U << 16U));
        s.extra = static_cast<int>(g_.below(1U << 16U));
        s.t1 = duration();
        break;
      case Op::spawn:
        s.kids = kids(depth, 1, true);
        break;
      case Op::await_task:
        s.flag = g_.chance(1, 2);
        s.kids = kids(depth, 1);
        break;
      case Op::await_coro:
        s.kids = kids(depth, 1);
        break;
      case Op::gather:
        s.flag = g_.chance(1, 2);
        s.mode = g_.between(0, 3);
        s.kids = kids(depth, g_.between(1, 4));
        break;
      case Op::wait_for:
        s.flag = g_.chance(1, 2);
        s.t2 = time_limit();
        s.kids = kids(depth, 1);
        break;
      case Op::timeout:
        s.mode = g_.between(0, 3);
        s.t1 = duration();
        s.t2 = maybe_time_limit();
        s.kids = kids(depth, 1);
        break;
      case Op::shield:
        s.flag = g_.chance(1, 2);
        s.kids = kids(depth, 1);
        break;
      case Op::wait:
        s.mode = g_.between(0, 2);
        s.flag = g_.chance(1, 2);
        s.t2 = maybe_time_limit();
        s.kids = kids(depth, g_.between(1, 4));
        break;
      case Op::as_completed: {
        s.flag = g_.chance(1, 3);
        s.t2 = maybe_time_limit();
        // With coroutines nobody holds the tasks: a result not consumed is never looked at.
        s.kids = kids(depth, g_.between(1, 4), s.flag);
        s.extra = g_.between(0, static_cast<int>(s.kids.size()));
        break;
      }
      case Op::task_group: {
        s.kids = kids(depth, g_.between(1, 3));
        s.extra = g_.between(0, static_cast<int>(s.kids.size()));  // created before the body
        const int body = g_.between(0, 2);
        for (int i = 0; i < body; ++i) s.body.push_back(make_step(depth + 1));
        break;
      }
      case Op::lock:
      case Op::semaphore:
        s.res = g_.between(0, 1);
        s.mode = g_.between(0, 3);
        s.t1 = duration();
        s.t2 = time_limit();
        s.flag = g_.chance(1, 8);
        break;
      case Op::event_wait:
        s.res = g_.between(0, p_.events - 1);
        s.mode = g_.between(0, 1);
        s.t2 = time_limit();
        break;
      case Op::event_set:
        s.res = g_.between(0, p_.events - 1);
        s.mode = g_.chance(1, 4) ? 1 : 0;
        break;
      case Op::condition_wait:
        s.res = g_.between(0, p_.conditions - 1);
        s.count = g_.between(1, 2);
        s.t2 = time_limit();
        break;
      case Op::condition_notify:
        s.res = g_.between(0, p_.conditions - 1);
        s.mode = g_.between(0, 2);
        break;
      case Op::barrier:
        s.res = 0;
        s.mode = g_.chance(1, 12) ? g_.between(2, 3) : 0;
        s.t2 = time_limit();
        break;
      case Op::put:
        s.res = g_.between(0, 1);
        s.mode = g_.between(0, 2);
        s.count = g_.between(1, 3);
        s.t1 = g_.chance(1, 2) ? 0 : duration();
        s.t2 = time_limit();
        break;
      case Op::get:
        s.res = g_.between(0, 1);
        s.mode = g_.between(0, 2);
        s.count = g_.between(1, 3);
        s.t2 = time_limit();
        break;
      case Op::queue_shutdown:
      case Op::queue_join:
        s.res = g_.between(0, 1);
        s.mode = g_.chance(1, 3) ? 1 : 0;
        s.t2 = time_limit();
        break;
      case Op::agen:
        s.res = g_.between(0, 1);
        s.mode = g_.between(0, 3);
        s.count = g_.between(0, 4);
        s.extra = g_.between(0, 5);
        s.extra2 = g_.chance(1, 4) ? g_.between(0, 4) : -1;
        s.flag = g_.chance(1, 4);
        s.t1 = g_.chance(1, 3) ? 0 : duration();
        s.t2 = time_limit();
        break;
      case Op::gen:
        s.count = g_.between(0, 4);
        s.extra = g_.between(0, 5);
        s.extra2 = g_.chance(1, 4) ? g_.between(0, 4) : -1;
        break;
      case Op::await_other:
        s.mode = g_.between(0, 3);
        s.count = static_cast<int>(g_.below(1U << 16U));
        s.t2 = time_limit();
        break;
      case Op::future:
        s.mode = g_.between(0, 8);
        s.t1 = duration();
        s.t2 = time_limit();
        s.flag = g_.chance(1, 2);
        break;
      case Op::count_:
        break;
    }
    return s;
  }

  Rng g_;
  Limits lim_;
  Program p_;
  int budget_ = 0;
};

inline std::string fmt_time(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", t);
  return buf;
}

inline void describe_steps(const std::vector<Step>& steps, int indent, std::string& out) {
  for (const Step& s : steps) {
    out.append(static_cast<std::size_t>(indent), ' ');
    out += "#" + std::to_string(s.sid) + " " + op_name(s.op);
    out += " mode=" + std::to_string(s.mode) + " res=" + std::to_string(s.res);
    out += " count=" + std::to_string(s.count) + " extra=" + std::to_string(s.extra);
    if (s.extra2 >= 0) out += " throws_at=" + std::to_string(s.extra2);
    if (s.flag) out += " flag";
    if (s.propagate) out += " propagate";
    out += " t1=" + fmt_time(s.t1);
    if (s.t2 >= 0) out += " t2=" + fmt_time(s.t2);
    if (!s.kids.empty()) {
      out += " kids=[";
      for (std::size_t i = 0; i < s.kids.size(); ++i) {
        out += (i ? "," : "") + std::string("n") + std::to_string(s.kids[i]);
      }
      out += "]";
    }
    out += "\n";
    describe_steps(s.body, indent + 4, out);
  }
}

}  // namespace detail

/// The program of `seed`. The same seed gives the same program, everywhere.
inline Program generate(std::uint64_t seed, Limits limits = {}) {
  return detail::Builder(seed, limits).build();
}

namespace detail {

inline void mark_reachable(const Program& p, const std::vector<Step>& steps,
                           std::vector<bool>& seen) {
  for (const Step& s : steps) {
    for (int k : s.kids) {
      if (!seen[static_cast<std::size_t>(k)]) {
        seen[static_cast<std::size_t>(k)] = true;
        mark_reachable(p, p.nodes[static_cast<std::size_t>(k)].steps, seen);
      }
    }
    mark_reachable(p, s.body, seen);
  }
}

/// Calls f(steps, i) for every step of the program, task_group bodies included.
template <class F>
void for_each_step(std::vector<Step>& steps, F& f) {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    f(steps, i);
    for_each_step(steps[i].body, f);
  }
}

}  // namespace detail

/// The nodes that can run: the root and the children of their steps.
inline std::vector<bool> reachable(const Program& p) {
  std::vector<bool> seen(p.nodes.size(), false);
  if (p.nodes.empty()) return seen;
  seen[0] = true;
  detail::mark_reachable(p, p.nodes[0].steps, seen);
  return seen;
}

/// Smaller variants of `p`, for shrinking a failing program: each one without one step (the
/// nodes it would start go with it), or with one step's or node's behaviour made plainer.
inline std::vector<Program> shrink_candidates(const Program& p) {
  std::vector<Program> out;
  const std::vector<bool> live = reachable(p);
  for (std::size_t n = 0; n < p.nodes.size(); ++n) {
    if (!live[n]) continue;
    std::size_t positions = 0;  // the steps of node n, task_group bodies included
    {
      Program probe = p;
      auto count = [&](std::vector<Step>& /*steps*/, std::size_t /*i*/) { ++positions; };
      detail::for_each_step(probe.nodes[n].steps, count);
    }
    for (std::size_t target = 0; target < positions; ++target) {
      for (int change = 0; change < 5; ++change) {
        Program c = p;
        std::size_t at = 0;
        std::vector<Step>* where = nullptr;
        std::size_t index = 0;
        auto pick = [&](std::vector<Step>& steps, std::size_t i) {
          if (at++ == target) {
            where = &steps;
            index = i;
          }
        };
        detail::for_each_step(c.nodes[n].steps, pick);
        Step& st = (*where)[index];
        bool changed = false;
        if (change == 0) {  // without the step
          where->erase(where->begin() + static_cast<std::ptrdiff_t>(index));
          changed = true;
        } else if (change == 1 && st.propagate) {  // errors stop at the step
          st.propagate = false;
          changed = true;
        } else if (change == 2 && (st.t1 != 0 || st.t2 > 0)) {  // no waiting
          st.t1 = 0;
          if (st.t2 > 0) st.t2 = 0;
          changed = true;
        } else if (change >= 3 && st.kids.size() > 1) {  // one child fewer (first, last)
          st.kids.erase(change == 3 ? st.kids.begin() : st.kids.end() - 1);
          changed = true;
        }
        if (changed) out.push_back(std::move(c));
      }
    }
    if (p.nodes[n].swallow) {
      Program c = p;
      c.nodes[n].swallow = false;
      out.push_back(std::move(c));
    }
  }
  return out;
}

/// A listing of the program, one step a line, for a failure report (the nodes that can run).
inline std::string describe(const Program& p) {
  std::string out;
  char head[128];
  std::snprintf(head, sizeof head, "program of seed 0x%016llx (debug %s, %s handles)\n",
                static_cast<unsigned long long>(p.seed), p.debug ? "on" : "off",
                p.weak ? "weak" : "strong");
  out += head;
  out += "  semaphores:";
  for (std::size_t i = 0; i < p.semaphores.size(); ++i) {
    out += " " + std::to_string(p.semaphores[i]) + (p.bounded[i] ? "(bounded)" : "");
  }
  out += "  barrier parties: " + std::to_string(p.barriers[0]) + "  queues:";
  for (const QueueSpec& q : p.queues) {
    static const char* const kKinds[] = {"Queue", "LifoQueue", "PriorityQueue"};
    out += std::string(" ") + kKinds[q.kind] + "(" + std::to_string(q.maxsize) + ")";
  }
  out += "\n";
  const std::vector<bool> live = reachable(p);
  for (const Node& n : p.nodes) {
    if (!live[static_cast<std::size_t>(n.id)]) continue;
    out += "  n" + std::to_string(n.id) + (n.swallow ? " swallow" : "") +
           (n.leaky ? " leaky" : "") + ":\n";
    detail::describe_steps(n.steps, 4, out);
  }
  return out;
}

}  // namespace fuzz
