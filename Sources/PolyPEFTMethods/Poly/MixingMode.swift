import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// How a Poly layer combines its skills for a task.
///
/// ```
/// parameters (PEFT, default):  A_mix = sum_k w_k A_k,  B_mix = sum_k w_k B_k,  delta = x A_mix B_mix / r
/// outputs (merge after):       delta_s = sum_k w_{s,k} (x A_k) B_{s,k} / r     for output block s
/// ```
/// With parameter mixing the update is bilinear in the routing weights (a product of two mixtures), which on tasks
/// built from known skills does not recover the true allocation; output mixing is linear in the weights and the
/// task's update is exactly the weighted sum of its skills' updates (rank up to K*r). `A_k` is skill k's full
/// `[in, r]` factor (its splits stacked); with splits, the weights of split s scale the columns of output block s.
public enum MixingMode: String, Sendable, Codable, CaseIterable {
    case parameters
    case outputs
}
