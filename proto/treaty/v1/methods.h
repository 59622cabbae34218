// RPC method names (Envelope.method). One place so both ends agree.
#pragma once

namespace treaty::v1::methods {

// Served by treatyd.
inline constexpr char kSubmit[] = "coordinator.Submit";                  // SubmitRequest -> SubmitResponse
inline constexpr char kSubmitSaga[] = "coordinator.SubmitSaga";            // SubmitSagaRequest -> SubmitSagaResponse
inline constexpr char kResolve[] = "coordinator.Resolve";                  // ResolveRequest -> ResolveResponse
inline constexpr char kGetTransaction[] = "coordinator.GetTransaction";  // GetTransactionRequest -> ...Response
inline constexpr char kRegister[] = "coordinator.Register";              // RegisterRequest -> RegisterResponse
inline constexpr char kQueryOutcome[] = "coordinator.QueryOutcome";      // QueryOutcomeRequest -> ...Response
inline constexpr char kListServices[] = "coordinator.ListServices";      // ListServicesRequest -> ...Response
inline constexpr char kClusterStatus[] =
    "coordinator.ClusterStatus";  // ClusterStatusRequest -> ...Response
inline constexpr char kChangeMembership[] =
    "coordinator.ChangeMembership";  // ChangeMembershipRequest -> ...Response
// Read model queries (proto/treaty/v1/query.proto).
inline constexpr char kListTransactions[] = "coordinator.ListTransactions";  // ListTransactionsRequest -> ...Response
inline constexpr char kStats[] = "coordinator.Stats";                        // StatsRequest -> StatsResponse
inline constexpr char kWatch[] = "coordinator.Watch";                        // WatchRequest -> WatchResponse (long poll)
inline constexpr char kRebuildReadModel[] = "coordinator.RebuildReadModel";  // RebuildReadModelRequest -> ...Response

// Served by every participant (participant/ library).
inline constexpr char kPrepare[] = "participant.Prepare";  // PrepareRequest -> PrepareResponse
inline constexpr char kCommit[] = "participant.Commit";    // DecisionRequest -> DecisionResponse
inline constexpr char kAbort[] = "participant.Abort";      // DecisionRequest -> DecisionResponse
inline constexpr char kInspect[] = "participant.Inspect";  // InspectRequest -> InspectResponse
inline constexpr char kAction[] = "participant.Action";          // StepRequest -> StepResponse (saga.proto)
inline constexpr char kCompensate[] = "participant.Compensate";  // StepRequest -> StepResponse (saga.proto)

}  // namespace treaty::v1::methods
