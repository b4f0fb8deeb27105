#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

// Scalar libm entry points under names that never collide with Tensor methods.
@inlinable func _log(_ x: Double) -> Double { log(x) }
@inlinable func _cos(_ x: Double) -> Double { cos(x) }
@inlinable func _sin(_ x: Double) -> Double { sin(x) }
@inlinable package func _expf(_ x: Float) -> Float { expf(x) }
@inlinable package func _logf(_ x: Float) -> Float { logf(x) }
@inlinable func _tanhf(_ x: Float) -> Float { tanhf(x) }
@inlinable func _erff(_ x: Float) -> Float { erff(x) }
@inlinable package func _powf(_ x: Float, _ y: Float) -> Float { powf(x, y) }
@inlinable func _log1pf(_ x: Float) -> Float { log1pf(x) }
