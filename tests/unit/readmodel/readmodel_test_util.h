// Helpers for the read model tests: a log and a read model in a temporary directory, event
// builders, seeded random event streams, and an independent replay of a stream (the expected
// views, computed without the read model's code).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "log/log.h"
#include "readmodel/readmodel.h"

namespace treaty::readmodel::testing {

// A fresh directory under /tmp; removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/treaty_readmodel_test_XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline uint64_t TestSeed() {
  if (const char* env = std::getenv("TREATY_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return EntropySeed();
}

// Polls pred every 5 ms until it holds (true) or timeout_ms passes (false).
inline bool WaitFor(const std::function<bool()>& pred, int64_t timeout_ms = 5000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Unix ms of FakeClock(start) at 0: FakeClock::UnixMs() is 1'700'000'000'000 + NowMs().
inline constexpr int64_t kEpochMs = 1'700'000'000'000;

inline v1::LogEvent Begun(const std::string& xid, int64_t unix_ms,
                          const std::vector<std::string>& services,
                          uint32_t prepare_timeout_ms = 5000) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::TxBegun* begun = event.mutable_begun();
  begun->set_prepare_timeout_ms(prepare_timeout_ms);
  for (const std::string& service : services) {
    v1::Branch* branch = begun->add_branches();
    branch->set_service(service);
    branch->set_op("op-" + service);
    branch->set_payload("{}");
  }
  return event;
}

inline v1::LogEvent Decided(const std::string& xid, int64_t unix_ms, v1::Decision decision,
                            const std::vector<v1::Vote>& votes = {},
                            const std::string& reason = "") {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::TxDecided* decided = event.mutable_decided();
  decided->set_decision(decision);
  decided->set_reason(reason);
  for (v1::Vote vote : votes) decided->add_votes(vote);
  return event;
}

inline v1::LogEvent Ended(const std::string& xid, int64_t unix_ms) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  event.mutable_ended();
  return event;
}

// Appends one event and waits until it is durable; returns its lsn (0 on failure).
inline uint64_t AppendOne(log::EventLog& log, v1::LogEvent event) {
  std::promise<uint64_t> done;
  std::future<uint64_t> lsn = done.get_future();
  std::vector<v1::LogEvent> events;
  events.push_back(std::move(event));
  log.Append(std::move(events), [&done](Status status, uint64_t last) {
    EXPECT_TRUE(status.ok()) << status.ToString();
    done.set_value(status.ok() ? last : 0);
  });
  return lsn.get();
}

// A log (sync off: these tests do not crash the machine) and a read model beside it.
struct Fixture {
  explicit Fixture(ReadModelOptions options = {}) : options_(std::move(options)) {
    options_.dir = tmp.Sub("readmodel");
    ReopenLog();
    Reopen();
  }
  // Closes the read model and the log, and opens the log again (not the read model).
  void ReopenLog() {
    model.reset();
    log.reset();
    log::LogOptions log_options;
    log_options.dir = tmp.Sub("log");
    log_options.sync = false;
    auto opened = log::EventLog::Open(log_options);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    if (opened.ok()) log = std::move(*opened);
  }
  // Closes the read model (if open) and opens it again over the same directory.
  void Reopen() {
    model.reset();
    if (!log) return;
    auto opened = ReadModel::Open(options_, *log, clock);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    if (opened.ok()) model = std::move(*opened);
  }
  uint64_t Append(v1::LogEvent event) { return AppendOne(*log, std::move(event)); }
  const ReadModelOptions& options() const { return options_; }

  TempDir tmp;
  FakeClock clock{1'000'000};
  std::unique_ptr<log::EventLog> log;
  std::unique_ptr<ReadModel> model;

 private:
  ReadModelOptions options_;
};

// What one transaction of a generated stream is expected to look like after all its events.
struct ExpectedTx {
  std::string xid;
  v1::TxState state = v1::TX_STATE_UNSPECIFIED;
  std::vector<std::string> services;  // per branch
  std::vector<v1::Vote> votes;        // per branch (commit decisions only)
  std::string reason;
  int64_t created = 0, updated = 0, decided = 0, finished = 0;
};

// A seeded random stream: transactions in every state, including presumed aborts of xids never
// begun and branches repeating a service, with their events interleaved across transactions.
struct Stream {
  std::vector<v1::LogEvent> events;            // in log order
  std::map<std::string, ExpectedTx> expected;  // by xid, the independent replay
};

inline Stream RandomStream(Random& random, int transactions, int64_t base_unix_ms) {
  static const std::vector<std::string> kServices = {"svc-a", "svc-b", "svc-c"};
  Stream stream;
  std::vector<std::vector<v1::LogEvent>> per_tx;
  for (int i = 0; i < transactions; ++i) {
    ExpectedTx tx;
    tx.xid = "tx-" + std::to_string(i);
    const uint64_t path = random.Uniform(6);
    const int64_t t0 = base_unix_ms + static_cast<int64_t>(random.Uniform(60'000));
    const int64_t t1 = t0 + static_cast<int64_t>(random.Uniform(3'000));
    const int64_t t2 = t1 + static_cast<int64_t>(random.Uniform(3'000));
    std::vector<v1::LogEvent> events;
    if (path == 5) {  // presumed abort of an xid never begun
      events.push_back(Decided(tx.xid, t0, v1::ABORT, {}, "unknown"));
      events.push_back(Ended(tx.xid, t1));
      tx.state = v1::ABORTED;
      tx.reason = "unknown";
      tx.created = tx.decided = t0;
      tx.finished = tx.updated = t1;
    } else {
      const int branches = 1 + static_cast<int>(random.Uniform(3));
      for (int b = 0; b < branches; ++b) tx.services.push_back(kServices[random.Uniform(3)]);
      events.push_back(Begun(tx.xid, t0, tx.services));
      tx.state = v1::PREPARING;
      tx.created = tx.updated = t0;
      if (path >= 1) {
        const bool commit = path <= 2;
        if (commit) {
          for (int b = 0; b < branches; ++b) {
            tx.votes.push_back(random.Chance(0.3) ? v1::READ_ONLY : v1::YES);
          }
        } else {
          tx.reason = "svc voted NO";
        }
        events.push_back(Decided(tx.xid, t1, commit ? v1::COMMIT : v1::ABORT, tx.votes, tx.reason));
        tx.state = commit ? v1::COMMITTING : v1::ABORTING;
        tx.decided = tx.updated = t1;
        if (path == 2 || path == 4) {
          events.push_back(Ended(tx.xid, t2));
          tx.state = commit ? v1::COMMITTED : v1::ABORTED;
          tx.finished = tx.updated = t2;
        }
      }
    }
    stream.expected[tx.xid] = tx;
    per_tx.push_back(std::move(events));
  }
  std::vector<size_t> next(per_tx.size(), 0);
  std::vector<size_t> open;
  for (size_t i = 0; i < per_tx.size(); ++i) open.push_back(i);
  while (!open.empty()) {
    const size_t pick = random.Uniform(open.size());
    const size_t tx = open[pick];
    stream.events.push_back(per_tx[tx][next[tx]++]);
    if (next[tx] == per_tx[tx].size()) {
      open[pick] = open.back();
      open.pop_back();
    }
  }
  return stream;
}

// Expected counters of one (service or total, outcome): count and latency sums, milliseconds.
struct ExpectedCounts {
  uint64_t count = 0;
  int64_t latency_sum = 0;
  int64_t decision_sum = 0;
};

// Per service ("" = total), per outcome (COMMITTED / ABORTED).
inline std::map<std::pair<std::string, v1::TxState>, ExpectedCounts> ExpectedCounters(
    const std::map<std::string, ExpectedTx>& txs) {
  std::map<std::pair<std::string, v1::TxState>, ExpectedCounts> out;
  for (const auto& [xid, tx] : txs) {
    if (tx.state != v1::COMMITTED && tx.state != v1::ABORTED) continue;
    std::set<std::string> scopes(tx.services.begin(), tx.services.end());
    scopes.insert("");
    for (const std::string& scope : scopes) {
      ExpectedCounts& c = out[{scope, tx.state}];
      ++c.count;
      c.latency_sum += tx.finished - tx.created;
      c.decision_sum += tx.decided - tx.created;
    }
  }
  return out;
}

// Asserts that Stats agrees with the expected transactions: per service and in total, the count
// and the latency sums of each outcome, and the summaries per state.
inline void ExpectStatsMatch(const v1::StatsResponse& stats,
                             const std::map<std::string, ExpectedTx>& expected) {
  std::map<std::pair<std::string, v1::TxState>, ExpectedCounts> got;
  auto collect = [&](const v1::ServiceStats& s) {
    for (const auto& [state, o] :
         {std::pair{v1::COMMITTED, &s.committed()}, std::pair{v1::ABORTED, &s.aborted()}}) {
      if (o->count() == 0) continue;
      ExpectedCounts& c = got[{s.service(), state}];
      c.count = o->count();
      c.latency_sum =
          static_cast<int64_t>(o->latency().mean_ms() * static_cast<double>(o->count()) + 0.5);
      c.decision_sum = static_cast<int64_t>(
          o->decision_latency().mean_ms() * static_cast<double>(o->count()) + 0.5);
    }
  };
  collect(stats.total());
  for (const auto& s : stats.services()) collect(s);
  const auto want = ExpectedCounters(expected);
  ASSERT_EQ(got.size(), want.size())
      << "services/outcomes with finished transactions differ: " << stats.ShortDebugString();
  for (const auto& [key, c] : want) {
    const auto& [service, state] = key;
    SCOPED_TRACE("service='" + service + "' outcome=" + v1::TxState_Name(state));
    ASSERT_EQ(got.count(key), 1u);
    EXPECT_EQ(got[key].count, c.count);
    EXPECT_EQ(got[key].latency_sum, c.latency_sum) << "begin..finish latency sum";
    EXPECT_EQ(got[key].decision_sum, c.decision_sum) << "begin..decision latency sum";
  }
  std::map<v1::TxState, uint64_t> states;
  for (const auto& [xid, tx] : expected) ++states[tx.state];
  std::map<v1::TxState, uint64_t> got_states;
  for (const auto& c : stats.states()) got_states[c.state()] = c.count();
  EXPECT_EQ(got_states, states) << "summaries per state";
}

// Every summary the read model returns through List (following every page).
inline std::vector<v1::TxSummary> ListAll(const ReadModel& model, v1::ListTransactionsRequest req) {
  std::vector<v1::TxSummary> out;
  for (int page = 0; page < 10'000; ++page) {
    auto resp = model.List(req);
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    if (!resp.ok()) break;
    for (const auto& s : resp->transactions()) out.push_back(s);
    if (resp->next_page_token().empty()) break;
    req.set_page_token(resp->next_page_token());
  }
  return out;
}

// A text form of everything the queries answer, for comparing two read models.
inline std::string AllAnswers(const ReadModel& model, const std::vector<std::string>& xids,
                              int64_t now_unix_ms) {
  std::string out;
  for (const std::string& xid : xids) {
    auto s = model.Get(xid);
    out += xid + ": " +
           (s.ok() ? (s->has_value() ? (*s)->ShortDebugString() : "none") : s.status().ToString()) +
           "\n";
  }
  v1::ListTransactionsRequest all;
  all.set_limit(7);
  for (const auto& s : ListAll(model, all)) out += "list " + s.xid() + "\n";
  auto stats = model.Stats();
  if (stats.ok()) {
    stats->clear_projector();
    out += "stats " + stats->ShortDebugString() + "\n";
  }
  auto attention = model.Attention(now_unix_ms, 1000);
  if (attention.ok()) out += "attention " + attention->ShortDebugString() + "\n";
  return out;
}

}  // namespace treaty::readmodel::testing
