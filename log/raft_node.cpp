// RaftNode: libraft + raft_uv on a uv loop thread of its own.

#include "log/raft_node.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <system_error>
#include <thread>
#include <vector>

extern "C" {  // libraft's headers have no C++ guards
#include <raft.h>
#include <raft/uv.h>
}

namespace treaty::log::internal {
namespace {

// How often the loop re-reads libraft's state (it has no state-change callback in 0.15).
constexpr uint64_t kPollMs = 10;
// Entries carry an 8-byte length header and are padded to a multiple of 8 bytes (later libraft
// versions require it; the segment format pads anyway).
constexpr size_t kHeader = 8;

size_t Padded(size_t n) { return (n + 7) & ~size_t{7}; }

ClusterRole RoleOf(int raft_state) {
  switch (raft_state) {
    case RAFT_FOLLOWER:
      return ClusterRole::kFollower;
    case RAFT_CANDIDATE:
      return ClusterRole::kCandidate;
    case RAFT_LEADER:
      return ClusterRole::kLeader;
    default:
      return ClusterRole::kUnavailable;
  }
}

ClusterMemberRole MemberRoleOf(int raft_role) {
  switch (raft_role) {
    case RAFT_STANDBY:
      return ClusterMemberRole::kStandby;
    case RAFT_SPARE:
      return ClusterMemberRole::kSpare;
    default:
      return ClusterMemberRole::kVoter;
  }
}

std::vector<ClusterPeer> ConfigurationOf(const struct raft* r) {
  std::vector<ClusterPeer> out;
  for (unsigned i = 0; i < r->configuration.n; ++i) {
    const raft_server& s = r->configuration.servers[i];
    out.push_back({s.id, s.address == nullptr ? "" : s.address, MemberRoleOf(s.role)});
  }
  return out;
}

bool SameConfiguration(const std::vector<ClusterPeer>& a, const std::vector<ClusterPeer>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].raft_address != b[i].raft_address || a[i].role != b[i].role) {
      return false;
    }
  }
  return true;
}

std::string Describe(const MembershipChange& c) {
  return c.action == MembershipChange::Action::kAdd
             ? fmt::format("adding node {} at {}", c.id, c.raft_address)
             : fmt::format("removing node {}", c.id);
}

// A libraft error of a membership change as a Status.
Status ChangeError(int rv, const MembershipChange& c) {
  const std::string what = Describe(c);
  switch (rv) {
    case RAFT_CANTCHANGE:
      return Status::FailedPrecondition(
          what +
          ": another membership change is still in progress (one at a time); retry once "
          "it finished");
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
      return Status::Unavailable(
          what +
          ": this node lost the leadership; the change may or may not take effect (check "
          "treaty cluster status, then retry)");
    case RAFT_NOCONNECTION:
      // libraft gave up promoting an added node it could not reach to catch it up.
      return Status::FailedPrecondition(fmt::format(
          "{}: the node could not be reached to catch up (is its treatyd running with --join at "
          "that Raft address?); it stays a spare: start it and add it again, or remove it",
          what));
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
      return Status::FailedPrecondition(what + ": " + raft_strerror(rv));
    default:
      return Status::Unavailable(what + ": " + raft_strerror(rv));
  }
}

// The stock TCP transport, with TCP_NODELAY set on every connection before libraft gets it.
struct NoDelayTransport {
  raft_uv_transport outer{};
  raft_uv_transport inner{};
  raft_uv_accept_cb accept_cb = nullptr;
  raft_uv_transport_close_cb close_cb = nullptr;

  struct Connect {
    raft_uv_connect inner_req{};
    raft_uv_connect* outer_req = nullptr;
    raft_uv_connect_cb cb = nullptr;
    NoDelayTransport* self = nullptr;
  };

  static NoDelayTransport* Of(raft_uv_transport* t) {
    return static_cast<NoDelayTransport*>(t->impl);
  }
  static NoDelayTransport* OfInner(raft_uv_transport* t) {
    return static_cast<NoDelayTransport*>(t->data);
  }

  static void NoDelay(uv_stream_t* stream) {
    if (stream != nullptr && stream->type == UV_TCP) {
      uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(stream), 1);
    }
  }

  static int Init(raft_uv_transport* t, raft_id id, const char* address) {
    NoDelayTransport* self = Of(t);
    const int rv = self->inner.init(&self->inner, id, address);
    if (rv != 0) std::snprintf(t->errmsg, sizeof(t->errmsg), "%s", self->inner.errmsg);
    return rv;
  }
  static void OnAccept(raft_uv_transport* inner, raft_id id, const char* address,
                       uv_stream_t* stream) {
    NoDelayTransport* self = OfInner(inner);
    NoDelay(stream);
    self->accept_cb(&self->outer, id, address, stream);
  }
  static int Listen(raft_uv_transport* t, raft_uv_accept_cb cb) {
    NoDelayTransport* self = Of(t);
    self->accept_cb = cb;
    const int rv = self->inner.listen(&self->inner, OnAccept);
    if (rv != 0) std::snprintf(t->errmsg, sizeof(t->errmsg), "%s", self->inner.errmsg);
    return rv;
  }
  static void OnConnect(raft_uv_connect* inner_req, uv_stream_t* stream, int status) {
    auto* c = static_cast<Connect*>(inner_req->data);
    if (status == 0) NoDelay(stream);
    raft_uv_connect* outer_req = c->outer_req;
    raft_uv_connect_cb cb = c->cb;
    delete c;
    cb(outer_req, stream, status);
  }
  static int DoConnect(raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address,
                       raft_uv_connect_cb cb) {
    NoDelayTransport* self = Of(t);
    auto* c = new Connect;
    c->inner_req.data = c;
    c->outer_req = req;
    c->cb = cb;
    c->self = self;
    const int rv = self->inner.connect(&self->inner, &c->inner_req, id, address, OnConnect);
    if (rv != 0) {
      delete c;
      std::snprintf(t->errmsg, sizeof(t->errmsg), "%s", self->inner.errmsg);
    }
    return rv;
  }
  static void OnClosed(raft_uv_transport* inner) {
    NoDelayTransport* self = OfInner(inner);
    if (self->close_cb != nullptr) self->close_cb(&self->outer);
  }
  static void Close(raft_uv_transport* t, raft_uv_transport_close_cb cb) {
    NoDelayTransport* self = Of(t);
    self->close_cb = cb;
    self->inner.close(&self->inner, OnClosed);
  }

  int Setup(uv_loop_t* loop) {
    const int rv = raft_uv_tcp_init(&inner, loop);
    if (rv != 0) return rv;
    inner.data = this;
    outer.impl = this;
    outer.init = Init;
    outer.listen = Listen;
    outer.connect = DoConnect;
    outer.close = Close;
    return 0;
  }
};

struct Proposal {
  struct raft_apply req;  // must live until its callback
  uint64_t tag = 0;
  RaftNode::Loop* loop = nullptr;
};

}  // namespace

struct RaftNode::Loop {
  RaftNode* node = nullptr;
  uv_loop_t loop{};
  NoDelayTransport transport;
  raft_io io{};
  raft_fsm fsm{};
  struct raft raft {};
  uv_async_t wake{};
  uv_async_t stop{};
  uv_async_t command{};
  uv_timer_t poll{};
  struct raft_change change_req {};  // the membership change in progress (one at a time)
  struct raft_barrier barrier {};
  std::thread thread;
  bool closing = false;
  bool apply_failed = false;

  static Loop* Of(raft_fsm* f) { return static_cast<Loop*>(f->data); }

  static int Apply(raft_fsm* f, const raft_buffer* buf, void** result) {
    Loop* self = Of(f);
    *result = nullptr;
    // libraft 0.15 bumps last_applied after apply returns, so this entry's index is one above.
    const uint64_t index = raft_last_applied(&self->raft) + 1;
    std::string_view entry;
    if (buf->len >= kHeader) {
      uint64_t len = 0;
      std::memcpy(&len, buf->base, sizeof(len));
      if (len <= buf->len - kHeader) entry = {static_cast<const char*>(buf->base) + kHeader, len};
    }
    const Status s = self->node->host_->Apply(index, entry);
    if (!s.ok()) {
      if (!self->apply_failed)
        spdlog::error("raft: applying entry {} failed: {}", index, s.ToString());
      self->apply_failed = true;
      return RAFT_IOERR;
    }
    return 0;
  }

  static int Snapshot(raft_fsm* f, raft_buffer* bufs[], unsigned* n_bufs) {
    Loop* self = Of(f);
    Result<std::string> state = self->node->host_->Snapshot();
    if (!state.ok()) {
      spdlog::error("raft: snapshot failed: {}", state.status().ToString());
      return RAFT_IOERR;
    }
    auto* array = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    if (array == nullptr) return RAFT_NOMEM;
    array[0].len = state->size();
    array[0].base = raft_malloc(state->empty() ? 1 : state->size());
    if (array[0].base == nullptr) {
      raft_free(array);
      return RAFT_NOMEM;
    }
    std::memcpy(array[0].base, state->data(), state->size());
    *bufs = array;
    *n_bufs = 1;
    return 0;
  }

  static int Restore(raft_fsm* f, raft_buffer* buf) {
    Loop* self = Of(f);
    const Status s = self->node->host_->Restore({static_cast<const char*>(buf->base), buf->len});
    if (!s.ok()) {
      spdlog::error("raft: restoring a snapshot failed: {}", s.ToString());
      return RAFT_IOERR;
    }
    raft_free(buf->base);  // ours once restore succeeded
    return 0;
  }

  static void OnApplied(struct raft_apply* req, int status, void* /*result*/) {
    auto* p = static_cast<Proposal*>(req->data);
    Loop* self = p->loop;
    --self->node->in_flight_;
    if (status != 0) {
      const std::string why =
          status == RAFT_LEADERSHIPLOST
              ? "leadership was lost before the entry committed; its outcome "
                "is unknown (retry with the same xid)"
              : fmt::format("raft refused the entry: {}", raft_strerror(status));
      self->node->host_->OnProposalFailed(p->tag, Status::Unavailable(why));
    }
    delete p;
    // After a failure libraft may be half-way through stepping down (it fails pending requests
    // before it changes state): touch nothing; the next poll sees the new state.
    if (status == 0 && !self->closing) self->node->host_->OnProposable();
  }

  static void OnBarrier(struct raft_barrier* req, int status) {
    Loop* self = static_cast<Loop*>(req->data);
    self->node->barrier_pending_ = false;
    if (status == 0 && !self->closing && raft_state(&self->raft) == RAFT_LEADER &&
        self->raft.current_term == self->node->barrier_term_) {
      self->node->serving_ = true;
      spdlog::info("raft: node {} is the serving leader (term {})", self->node->options_.node_id,
                   self->raft.current_term);
    }
    if (!self->closing) self->node->Poll();
  }

  static void OnWake(uv_async_t* h) {
    Loop* self = static_cast<Loop*>(h->data);
    if (!self->closing) self->node->host_->OnProposable();
  }

  static void OnCommand(uv_async_t* h) {
    Loop* self = static_cast<Loop*>(h->data);
    std::deque<Change> commands;
    {
      std::lock_guard<std::mutex> lock(self->node->mu_);
      commands.swap(self->node->commands_);
    }
    for (Change& c : commands) {
      if (self->closing) {
        c.done(Status::Unavailable("the Raft node is shutting down"));
      } else {
        self->node->StartChange(std::move(c));
      }
    }
  }

  static void OnChange(struct raft_change* req, int status) {
    Loop* self = static_cast<Loop*>(req->data);
    RaftNode* node = self->node;
    if (!node->change_) return;
    if (status != 0) return node->FinishChange(ChangeError(status, node->change_->change));
    if (node->change_->change.action == MembershipChange::Action::kAdd && !node->promoting_ &&
        !self->closing) {
      // The node is a spare now; promote it from the loop, outside libraft's callback.
      node->promote_due_ = true;
      return;
    }
    node->FinishChange(Status::Ok());
  }

  static void OnPoll(uv_timer_t* h) {
    Loop* self = static_cast<Loop*>(h->data);
    if (!self->closing) self->node->Poll();
  }

  static void OnHandleClosed(uv_handle_t*) {}

  static void OnRaftClosed(struct raft* r) {
    Loop* self = static_cast<Loop*>(r->data);
    raft_uv_close(&self->io);
    raft_uv_tcp_close(&self->transport.inner);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->wake), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->stop), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->command), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->poll), OnHandleClosed);
    // libraft fails a pending change when it closes; in case it did not, the caller hears now.
    if (self->node->change_) {
      self->node->FinishChange(Status::Unavailable("the Raft node shut down during the change"));
    }
  }

  static void OnStop(uv_async_t* h) {
    Loop* self = static_cast<Loop*>(h->data);
    if (self->closing) return;
    self->closing = true;
    uv_timer_stop(&self->poll);
    if (self->node->serving_) {
      self->node->serving_ = false;
      self->node->host_->OnLeadershipLost();
    }
    raft_close(&self->raft, OnRaftClosed);
  }
};

Result<std::unique_ptr<RaftNode>> RaftNode::Start(const ClusterOptions& options, RaftHost* host) {
  if (options.node_id == 0) return Status::InvalidArgument("cluster: node id must be >= 1");
  std::string self_address;
  for (const ClusterPeer& p : options.peers) {
    if (p.id == options.node_id) self_address = p.raft_address;
  }
  if (self_address.empty()) {
    return Status::InvalidArgument(
        fmt::format("cluster: node {} is not among the peers", options.node_id));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.raft_dir, ec);
  if (ec) {
    return Status::Unavailable(fmt::format("cluster: cannot create the Raft directory {}: {}",
                                           options.raft_dir, ec.message()));
  }
  // A write to a peer that died raises SIGPIPE; the transport handles EPIPE itself.
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<RaftNode> node(new RaftNode());
  node->host_ = host;
  node->options_ = options;
  node->loop_ = std::make_unique<Loop>();
  Loop& l = *node->loop_;
  l.node = node.get();
  uv_loop_init(&l.loop);
  auto fail = [&l](int rv, const std::string& what) {
    uv_loop_close(&l.loop);
    return Status::Unavailable(fmt::format("cluster: {}: {}", what, raft_strerror(rv)));
  };
  if (int rv = l.transport.Setup(&l.loop); rv != 0) return fail(rv, "TCP transport");
  if (int rv = raft_uv_init(&l.io, &l.loop, options.raft_dir.c_str(), &l.transport.outer);
      rv != 0) {
    return Status::Unavailable(fmt::format("cluster: cannot use the Raft directory {}: {} {}",
                                           options.raft_dir, raft_strerror(rv), l.io.errmsg));
  }
  l.fsm.version = 1;
  l.fsm.data = &l;
  l.fsm.apply = Loop::Apply;
  l.fsm.snapshot = Loop::Snapshot;
  l.fsm.restore = Loop::Restore;
  if (int rv = raft_init(&l.raft, &l.io, &l.fsm, options.node_id, self_address.c_str()); rv != 0) {
    return Status::Unavailable(
        fmt::format("cluster: raft_init failed: {} {}", raft_strerror(rv), raft_errmsg(&l.raft)));
  }
  l.raft.data = &l;
  raft_set_election_timeout(&l.raft, options.election_timeout_ms);
  raft_set_heartbeat_timeout(&l.raft, options.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(&l.raft, options.snapshot_threshold);
  raft_set_snapshot_trailing(&l.raft, options.snapshot_trailing);
  raft_set_pre_vote(&l.raft, true);

  // A joining node starts empty and gets its configuration from the leader that adds it.
  int boot = RAFT_CANTBOOTSTRAP;
  if (!options.join) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    for (const ClusterPeer& p : options.peers) {
      raft_configuration_add(&conf, p.id, p.raft_address.c_str(), RAFT_VOTER);
    }
    boot = raft_bootstrap(&l.raft, &conf);
    raft_configuration_close(&conf);
  }
  if (boot != 0 && boot != RAFT_CANTBOOTSTRAP) {
    return Status::Unavailable(fmt::format("cluster: bootstrapping {} failed: {} {}",
                                           options.raft_dir, raft_strerror(boot),
                                           raft_errmsg(&l.raft)));
  }
  if (boot == 0)
    spdlog::info("raft: bootstrapped {} with {} voters", options.raft_dir, options.peers.size());

  uv_async_init(&l.loop, &l.wake, Loop::OnWake);
  l.wake.data = &l;
  uv_async_init(&l.loop, &l.stop, Loop::OnStop);
  l.stop.data = &l;
  uv_async_init(&l.loop, &l.command, Loop::OnCommand);
  l.command.data = &l;
  l.change_req.data = &l;
  uv_timer_init(&l.loop, &l.poll);
  l.poll.data = &l;
  l.barrier.data = &l;

  if (int rv = raft_start(&l.raft); rv != 0) {
    // raft_start's own message is often empty (e.g. the port is in use): name the address.
    return Status::Unavailable(fmt::format(
        "cluster: raft_start failed for node {} at {} (is the Raft port in use, or the "
        "directory another cluster's?): {} {} {}",
        options.node_id, self_address, raft_strerror(rv), raft_errmsg(&l.raft), l.io.errmsg));
  }
  uv_timer_start(&l.poll, Loop::OnPoll, kPollMs, kPollMs);
  {
    std::lock_guard<std::mutex> lock(node->mu_);
    node->published_.node_id = options.node_id;
    node->published_.role = ClusterRole::kUnavailable;
    // raft_start loaded the configuration; the raft thread does not run yet.
    node->last_configuration_ = ConfigurationOf(&l.raft);
    node->configuration_ = node->last_configuration_;
  }
  spdlog::info("raft: node {} started at {} (dir {})", options.node_id, self_address,
               options.raft_dir);
  l.thread = std::thread([&l] {
    uv_run(&l.loop, UV_RUN_DEFAULT);
    uv_loop_close(&l.loop);
  });
  return node;
}

RaftNode::~RaftNode() { Stop(); }

void RaftNode::Stop() {
  if (!loop_ || !loop_->thread.joinable()) return;
  uv_async_send(&loop_->stop);
  loop_->thread.join();
  std::deque<Change> refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    refused.swap(commands_);
  }
  for (Change& c : refused) c.done(Status::Unavailable("the Raft node stopped"));
  ClusterState s = state();
  s.role = ClusterRole::kUnavailable;
  s.serving = false;
  Publish(s);
}

void RaftNode::Wake() { uv_async_send(&loop_->wake); }

void RaftNode::ChangeMembership(MembershipChange change, std::function<void(Status)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      commands_.push_back({std::move(change), std::move(done)});
      uv_async_send(&loop_->command);
      return;
    }
  }
  done(Status::Unavailable("the Raft node stopped"));
}

void RaftNode::StartChange(Change c) {
  struct raft* r = &loop_->raft;
  const MembershipChange& m = c.change;
  if (change_) {
    return c.done(Status::FailedPrecondition(fmt::format(
        "{}: another membership change ({}) is in progress (one at a time); retry once it "
        "finished",
        Describe(m), Describe(change_->change))));
  }
  if (!serving_) {
    return c.done(
        Status::Unavailable(fmt::format("node {} is not the serving leader", options_.node_id)));
  }
  const std::vector<ClusterPeer> conf = ConfigurationOf(r);
  const ClusterPeer* member = nullptr;
  size_t voters = 0;
  for (const ClusterPeer& p : conf) {
    if (p.id == m.id) member = &p;
    if (p.role == ClusterMemberRole::kVoter) ++voters;
  }
  int rv = 0;
  if (m.action == MembershipChange::Action::kAdd) {
    for (const ClusterPeer& p : conf) {
      if (p.id != m.id && p.raft_address == m.raft_address) {
        return c.done(Status::FailedPrecondition(
            fmt::format("{}: node {} already uses that Raft address", Describe(m), p.id)));
      }
    }
    if (member != nullptr && member->raft_address != m.raft_address) {
      return c.done(Status::FailedPrecondition(
          fmt::format("{}: node {} is already a member, at {}; remove it first", Describe(m), m.id,
                      member->raft_address)));
    }
    if (member != nullptr && member->role == ClusterMemberRole::kVoter) {
      return c.done(Status::Ok());  // done before (a retried request)
    }
    change_ = std::move(c);
    if (member != nullptr) {
      // Added before but not promoted (an earlier request timed out or lost the leadership).
      promote_due_ = true;
      return PromoteAdded();
    }
    promoting_ = false;
    // c (and m with it) was moved into change_.
    const MembershipChange& added = change_->change;
    rv = raft_add(r, &loop_->change_req, added.id, added.raft_address.c_str(), Loop::OnChange);
  } else {
    if (member == nullptr) return c.done(Status::Ok());  // not (any more) a member
    if (member->role == ClusterMemberRole::kVoter && voters == 1) {
      return c.done(Status::FailedPrecondition(
          fmt::format("{}: it is the last voter of the cluster", Describe(m))));
    }
    const uint64_t id = m.id;
    change_ = std::move(c);
    rv = raft_remove(r, &loop_->change_req, id, Loop::OnChange);
  }
  if (rv != 0) return FinishChange(ChangeError(rv, change_->change));
  spdlog::info("raft: {}", Describe(change_->change));
}

void RaftNode::PromoteAdded() {
  promote_due_ = false;
  promoting_ = true;
  if (!change_) return;
  spdlog::info("raft: node {} was added as a spare; promoting it to voter once it caught up",
               change_->change.id);
  const int rv =
      raft_assign(&loop_->raft, &loop_->change_req, change_->change.id, RAFT_VOTER, Loop::OnChange);
  if (rv != 0) FinishChange(ChangeError(rv, change_->change));
}

void RaftNode::FinishChange(Status status) {
  if (!change_) return;
  Change c = std::move(*change_);
  change_.reset();
  promote_due_ = false;
  promoting_ = false;
  // The caller may read cluster_peers() at once: publish the new configuration first.
  PublishConfiguration();
  if (status.ok()) {
    spdlog::info("raft: done {}", Describe(c.change));
  } else {
    spdlog::warn("raft: {}", status.ToString());
  }
  c.done(std::move(status));
}

void RaftNode::PublishConfiguration() {
  std::vector<ClusterPeer> conf = ConfigurationOf(&loop_->raft);
  if (SameConfiguration(conf, last_configuration_)) return;
  last_configuration_ = conf;
  std::lock_guard<std::mutex> lock(mu_);
  configuration_ = std::move(conf);
}

std::vector<ClusterPeer> RaftNode::configuration() const {
  std::lock_guard<std::mutex> lock(mu_);
  return configuration_;
}

Status RaftNode::Propose(std::string_view entry, uint64_t tag) {
  if (!serving_) {
    return Status::Unavailable(fmt::format("node {} is not the serving leader", options_.node_id));
  }
  const size_t len = Padded(kHeader + entry.size());
  raft_buffer buf;
  buf.len = len;
  buf.base = raft_malloc(len);
  if (buf.base == nullptr) return Status::ResourceExhausted("cluster: out of memory for an entry");
  std::memset(buf.base, 0, len);
  const uint64_t n = entry.size();
  std::memcpy(buf.base, &n, sizeof(n));
  std::memcpy(static_cast<char*>(buf.base) + kHeader, entry.data(), entry.size());
  auto* p = new Proposal;
  p->req.data = p;
  p->tag = tag;
  p->loop = loop_.get();
  const int rv = raft_apply(&loop_->raft, &p->req, &buf, 1, Loop::OnApplied);
  if (rv != 0) {
    raft_free(buf.base);  // still ours when raft_apply fails
    delete p;
    return Status::Unavailable(
        fmt::format("node {} cannot propose: {}", options_.node_id, raft_strerror(rv)));
  }
  ++in_flight_;
  return Status::Ok();
}

void RaftNode::Poll() {
  struct raft* r = &loop_->raft;
  const int role = raft_state(r);
  if (role != last_role_ || r->current_term != last_term_) {
    // A new term means a new leadership even when this node leads again: serve only after a
    // barrier of the new term.
    if (last_role_ == RAFT_LEADER || serving_) {
      if (serving_) spdlog::warn("raft: node {} is no longer the leader", options_.node_id);
      serving_ = false;
      host_->OnLeadershipLost();
    }
    last_role_ = role;
    last_term_ = r->current_term;
  }
  if (role == RAFT_LEADER && !serving_ && !barrier_pending_) {
    // Serve only once every entry of earlier terms is applied: a barrier entry of this term
    // commits after them.
    barrier_pending_ = true;
    barrier_term_ = r->current_term;
    if (raft_barrier(r, &loop_->barrier, Loop::OnBarrier) != 0) barrier_pending_ = false;
  }
  if (promote_due_ && change_) {
    if (serving_) {
      PromoteAdded();
    } else {
      FinishChange(ChangeError(RAFT_LEADERSHIPLOST, change_->change));
    }
  }
  PublishConfiguration();
  ClusterState next;
  next.node_id = options_.node_id;
  next.role = RoleOf(role);
  next.serving = serving_;
  next.term = r->current_term;
  raft_id leader_id = 0;
  const char* leader_address = nullptr;
  raft_leader(r, &leader_id, &leader_address);
  next.leader_id = leader_id;
  next.commit_index = r->commit_index;
  next.applied_index = raft_last_applied(r);
  next.last_log_index = raft_last_index(r);
  Publish(next);
}

void RaftNode::Publish(const ClusterState& next) {
  std::lock_guard<std::mutex> lock(mu_);
  const ClusterState& prev = published_;
  const bool changed = prev.role != next.role || prev.serving != next.serving ||
                       prev.term != next.term || prev.leader_id != next.leader_id;
  const uint64_t epoch = prev.epoch + (changed ? 1 : 0);
  published_ = next;
  published_.epoch = epoch;
  if (changed) changed_.notify_all();
}

ClusterState RaftNode::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

ClusterState RaftNode::WaitChange(uint64_t seen_epoch, int64_t timeout_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return published_.epoch != seen_epoch; });
  return published_;
}

}  // namespace treaty::log::internal
