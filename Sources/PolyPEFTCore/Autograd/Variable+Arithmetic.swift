/// Broadcasting arithmetic. Backward of a broadcast reduces the gradient back to each operand's shape.
extension Variable {
    /// `a + b`;  da = g, db = g (each summed to its operand's shape).
    ///
    /// `b` is taken over: when both have the same shape and `b`'s storage is no longer shared (a temporary such as
    /// an adapter's update in `base(x) + delta(x)`), `a` is added into it in place instead of into a new buffer.
    /// Each element is `b + a`, bitwise equal to `a + b`.
    public static func + (a: Variable, b: consuming Variable) throws -> Variable {
        let (sa, sb) = (a.shape, b.shape)
        let bNode = b.node
        let sum: Tensor
        if sa == sb {
            var t = (consume b).value                  // unique now unless someone else holds b's value
            try t.add(a.value)                         // in place when unique, else copy-on-write
            sum = t
        } else {
            sum = try a.value + b.value
        }
        guard a.node != nil || bNode != nil else { return Variable(sum) }
        return Variable(value: sum, node: GradNode(shape: sum.shape, inputs: [a.node, bNode]) { g, needs in
            [needs[0] ? try g.reduced(toShape: sa) : nil, needs[1] ? try g.reduced(toShape: sb) : nil]
        })
    }

    /// `a - b`;  da = g, db = -g.
    public static func - (a: Variable, b: Variable) throws -> Variable {
        let (sa, sb) = (a.shape, b.shape)
        return record(try a.value - b.value, [a, b]) { g, needs in
            [needs[0] ? try g.reduced(toShape: sa) : nil, needs[1] ? try (-g).reduced(toShape: sb) : nil]
        }
    }

    /// `a * b`;  da = g b, db = g a.
    public static func * (a: Variable, b: Variable) throws -> Variable {
        let (x, y) = (a.value, b.value)
        return record(try x * y, [a, b]) { g, needs in
            [needs[0] ? try (g * y).reduced(toShape: x.shape) : nil, needs[1] ? try (g * x).reduced(toShape: y.shape) : nil]
        }
    }

    /// `a / b`;  da = g / b, db = -g a / b^2.
    public static func / (a: Variable, b: Variable) throws -> Variable {
        let (x, y) = (a.value, b.value)
        return record(try x / y, [a, b]) { g, needs in
            [needs[0] ? try (g / y).reduced(toShape: x.shape) : nil,
             needs[1] ? try (-(try g * x) / y.squared()).reduced(toShape: y.shape) : nil]
        }
    }

    // MARK: Scalar forms

    public static func + (a: Variable, s: Float) -> Variable { record(a.value + s, [a]) { g, _ in [g] } }
    public static func - (a: Variable, s: Float) -> Variable { record(a.value - s, [a]) { g, _ in [g] } }
    public static func - (s: Float, a: Variable) -> Variable { record(s - a.value, [a]) { g, _ in [-g] } }
    public static func * (a: Variable, s: Float) -> Variable { record(a.value * s, [a]) { g, _ in [g * s] } }
    public static func * (s: Float, a: Variable) -> Variable { a * s }
    public static func / (a: Variable, s: Float) -> Variable { a * (1 / s) }
    public static prefix func - (a: Variable) -> Variable { record(-a.value, [a]) { g, _ in [-g] } }
}
