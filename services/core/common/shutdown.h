// Graceful shutdown on SIGTERM / SIGINT without async-signal handlers: the signals are blocked
// in every thread (call BlockShutdownSignals() first thing in main, before any thread starts)
// and one thread waits for them with sigwait.
#pragma once

namespace imginterp::common {

// Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE for this thread and every thread it creates later.
void BlockShutdownSignals();

// Waits until SIGTERM or SIGINT arrives (or RequestShutdown is called); returns the signal.
int WaitForShutdownSignal();

// Like WaitForShutdownSignal, but also returns on SIGHUP (services reload their models on it).
int WaitForShutdownOrReloadSignal();

// Wakes WaitForShutdownSignal from inside the process (tests, fatal errors).
void RequestShutdown();

}  // namespace imginterp::common
