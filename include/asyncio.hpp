// asyncio.hpp - the umbrella header (Python: `import asyncio`).
#pragma once

#include "asyncio/coroutines.hpp"
#include "asyncio/debug.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/executors.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/generators.hpp"
#include "asyncio/locks.hpp"
#include "asyncio/queues.hpp"
#include "asyncio/runners.hpp"
#include "asyncio/sockets.hpp"
#include "asyncio/task_ref.hpp"
#include "asyncio/taskgroups.hpp"
#include "asyncio/tasks.hpp"
#include "asyncio/threads.hpp"
#include "asyncio/timeouts.hpp"
