import PolyPEFTCore
import PolyPEFTIO

extension Sequence {
    /// The elements whose object (compared by identity, `===`) has not appeared in an earlier element, in order: a
    /// `Parameter` shared by several modules, or a router shared by several layers, is kept once, at its first place.
    ///
    /// ```
    /// [(a, p1), (b, p2), (c, p1)].uniqueObjects { $0.1 }  ==  [(a, p1), (b, p2)]
    /// ```
    package func uniqueObjects(by object: (Element) -> AnyObject) -> [Element] {
        var seen = Set<ObjectIdentifier>()
        return filter { seen.insert(ObjectIdentifier(object($0))).inserted }
    }
}
