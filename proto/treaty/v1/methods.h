// RPC method names (Envelope.method). One place so both ends agree.
#pragma once

namespace treaty::v1::methods {

// Served by treatyd.
inline constexpr char kSubmit[] = "coordinator.Submit";                  // SubmitRequest -> SubmitResponse
inline constexpr char kGetTransaction[] = "coordinator.GetTransaction";  // GetTransactionRequest -> ...Response
inline constexpr char kRegister[] = "coordinator.Register";              // RegisterRequest -> RegisterResponse
inline constexpr char kQueryOutcome[] = "coordinator.QueryOutcome";      // QueryOutcomeRequest -> ...Response
inline constexpr char kListServices[] = "coordinator.ListServices";      // ListServicesRequest -> ...Response

// Served by every participant (participant/ library).
inline constexpr char kPrepare[] = "participant.Prepare";  // PrepareRequest -> PrepareResponse
inline constexpr char kCommit[] = "participant.Commit";    // DecisionRequest -> DecisionResponse
inline constexpr char kAbort[] = "participant.Abort";      // DecisionRequest -> DecisionResponse
inline constexpr char kInspect[] = "participant.Inspect";  // InspectRequest -> InspectResponse

}  // namespace treaty::v1::methods
