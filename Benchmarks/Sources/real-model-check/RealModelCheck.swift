import Foundation
import PolyPEFT

/// The Swift half of `Benchmarks/real_model_check.py`: a published BERT checkpoint folder as it is (config, weights,
/// `tokenizer.json`), a PEFT adapter folder made for it by PyTorch + PEFT, and texts with task ids; writes what
/// PolyPEFT computes for the Python half to compare:
///
/// ```
/// real-model-check <model folder> <adapter folder> <texts.jsonl> <out.safetensors>
/// texts.jsonl: {"text": "...", "task": 0} per line
/// out: input_ids, attention_mask, token_type_ids [B, T] (the tokenizer, padded to the longest, truncated as the
///      file says); base_output, peft_output [B, T, H] (last_hidden_state, eval mode); grad.<adapter key> of
///      sum(peft_output^2)
/// ```
@main
struct RealModelCheck {
    static func main() {
        let args = CommandLine.arguments
        guard args.count == 5 else {
            FileHandle.standardError.write(Data("usage: real-model-check <model folder> <adapter folder> <texts.jsonl> <out.safetensors>\n".utf8))
            exit(64)
        }
        do { try run(URL(fileURLWithPath: args[1]), URL(fileURLWithPath: args[2]), args[3], URL(fileURLWithPath: args[4])) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(_ model: URL, _ adapter: URL, _ textsPath: String, _ out: URL) throws {
        var tokenizer = try Tokenizer(contentsOf: model)
        tokenizer.padding = Tokenizer.Padding(length: nil, id: tokenizer.padding?.id ?? 0, token: tokenizer.padding?.token ?? "[PAD]")
        let lines = try String(contentsOfFile: textsPath, encoding: .utf8).split(separator: "\n").map { try JSONValue(parsing: String($0)) }
        let texts = lines.map { $0["text"]?.stringValue ?? "" }, tasks = lines.map { $0["task"]?.intValue ?? 0 }
        let encodings = try tokenizer.encodeBatch(texts)
        let ids = encodings.map(\.ids), mask = encodings.map(\.attentionMask), types = encodings.map(\.typeIDs)

        let bert = try BertModel.load(from: model)
        let (base, _) = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, .inference())
        let peft = try PeftModel.load(from: adapter, into: bert)
        let ctx = Context(mode: .eval, taskIDs: tasks)
        let (y, _) = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx)
        try y.squared().sum().backward()

        let (b, t) = (ids.count, ids[0].count)
        func rows(_ r: [[Int]]) throws -> SafetensorsEntry { try .int(r.flatMap { $0 }, shape: [b, t]) }
        var entries: [String: SafetensorsEntry] = [
            "input_ids": try rows(ids), "attention_mask": try rows(mask), "token_type_ids": try rows(types),
            "base_output": try .float(base.value), "peft_output": try .float(y.value),
        ]
        for (key, p) in peft.adapterParameters() { entries["grad." + key] = try .float(p.grad ?? Tensor.zeros(p.value.shape)) }
        try Safetensors.write(entries: entries, to: out)
    }
}
