import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

/// Run folders under hostile conditions (issue 19): one writer at a time, `--overwrite`, leftovers of interrupted
/// saves, divergence, non-finite checkpoints, and a real process stopped by SIGTERM and killed by SIGKILL.
final class RunFolderTests: CLITestCase {

    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    func bytes(_ dir: String, _ file: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: dir + "/" + file)) }

    func stateStep(_ dir: String) throws -> Int {
        let state = try JSONDecoder().decode(Trainer.State.self, from: try bytes(dir, "checkpoint/trainer_state.json"))
        return state.step
    }

    /// A second run into a run folder is refused; `--overwrite` replaces every file of the old run, including its
    /// base network (which used to survive and make the new adapter evaluate on the wrong base).
    func testReusingARunFolderNeedsOverwriteAndReplacesTheBase() throws {
        let dir = path("run")
        XCTAssertEqual(run(["train"] + tiny + ["--output", dir]).code, 0)
        let oldBase = try bytes(dir, "base_model.safetensors")
        let again = run(["train"] + tiny + ["--seed", "3", "--output", dir])
        XCTAssertEqual(again.code, 1)
        XCTAssertEqual(again.err, "error: \(dir) already holds a run (polypeft_run.json); continue it with 'polyctl train --resume \(dir)', or replace it with '--overwrite'\n")
        let replaced = run(["train"] + tiny + ["--seed", "3", "--output", dir, "--overwrite"])
        XCTAssertEqual(replaced.code, 0, replaced.err)
        XCTAssertNotEqual(try bytes(dir, "base_model.safetensors"), oldBase)
        // The same run trained into a fresh folder gives the same files: nothing of the old run is left in.
        let fresh = path("fresh")
        XCTAssertEqual(run(["train"] + tiny + ["--seed", "3", "--output", fresh]).code, 0)
        for f in ["base_model.safetensors", "adapter_model.safetensors", "checkpoint/optimizer.safetensors"] {
            XCTAssertEqual(try bytes(dir, f), try bytes(fresh, f), f)
        }
        let e = run(["eval", "--adapter", dir, "--no-fewshot", "--json"])
        XCTAssertEqual(e.code, 0, e.err)
        // `--overwrite` only applies to new runs.
        XCTAssertEqual(run(["train", "--resume", dir, "--overwrite"]).code, 64)
    }

    /// A folder locked by another writer is refused with the holder's process id; the lock goes with its holder.
    func testOneWriterPerRunFolder() throws {
        let dir = path("locked")
        let holder = try RunFolder.claim(URL(fileURLWithPath: dir), resuming: false, overwrite: false)
        let r = run(["train"] + tiny + ["--output", dir])
        XCTAssertEqual(r.code, 1)
        XCTAssertEqual(r.err, "error: \(dir) is in use by another 'polyctl train' (process \(getpid())); wait for it to finish or choose another --output\n")
        holder.release()
        XCTAssertEqual(run(["train"] + tiny + ["--output", dir]).code, 0)
    }

    /// Temporary files and folders of interrupted saves, and a `checkpoint.old` made redundant, are removed when the
    /// run is resumed; a `checkpoint.old` alone is the checkpoint.
    func testLeftoversOfInterruptedSavesAreCleanedUp() throws {
        let dir = path("left"), fm = FileManager.default
        XCTAssertEqual(run(["train"] + tiny + ["--output", dir, "--stop-after", "10"]).code, 130)
        let junk = [".checkpoint.tmp-123456789", ".adapter_model.safetensors.tmp-0123456789abcdef", "checkpoint.old"]
        try fm.createDirectory(atPath: dir + "/" + junk[0], withIntermediateDirectories: false)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dir + "/" + junk[0] + "/adapter_model.safetensors"))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dir + "/" + junk[1]))
        try fm.copyItem(atPath: dir + "/checkpoint", toPath: dir + "/" + junk[2])
        let notJunk = dir + "/.notes.tmp-x"
        try Data().write(to: URL(fileURLWithPath: notJunk))
        XCTAssertEqual(run(["train", "--resume", dir, "--quiet", "--no-baseline", "--stop-after", "20"]).code, 130)
        for j in junk { XCTAssertFalse(fm.fileExists(atPath: dir + "/" + j), j) }
        XCTAssertTrue(fm.fileExists(atPath: notJunk), "a file not named like a temporary of ours is kept")
        // Only the `.old` copy left (a kill between the two renames of a save): it is read, and the run goes on.
        try fm.moveItem(atPath: dir + "/checkpoint", toPath: dir + "/checkpoint.old")
        let r = run(["train", "--resume", dir, "--no-baseline"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.hasPrefix("Resuming at step 20 "), r.out)
        XCTAssertFalse(fm.fileExists(atPath: dir + "/checkpoint.old"))
        XCTAssertEqual(try stateStep(dir), 30)
    }

    /// A run stopped before its first checkpoint starts again from step 0 and ends as an uninterrupted run.
    func testResumeBeforeTheFirstCheckpointStartsAgain() throws {
        let a = path("a"), b = path("b")
        XCTAssertEqual(run(["train"] + tiny + ["--output", a]).code, 0)
        XCTAssertEqual(run(["train"] + tiny + ["--output", b, "--stop-after", "5"]).code, 130)
        try FileManager.default.removeItem(atPath: b + "/checkpoint")
        let r = run(["train", "--resume", b, "--no-baseline"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.hasPrefix("Starting again (no checkpoint yet) "), r.out)
        XCTAssertEqual(try bytes(a, "adapter_model.safetensors"), try bytes(b, "adapter_model.safetensors"))
    }

    /// A step with a non-finite loss is not applied: the run stops with an error naming the step and saves the last
    /// good state, whose weights are finite.
    func testDivergenceStopsAndKeepsTheLastGoodState() throws {
        let dir = path("diverge")
        let r = run(["train", "--steps", "50", "--lr", "1e30", "--no-baseline", "--quiet", "--output", dir])
        XCTAssertEqual(r.code, 1)
        let step = try stateStep(dir)
        XCTAssertEqual(r.err, "error: training diverged at step \(step + 1): the loss is inf, so that step was not applied; the last good state (step \(step)) is saved in \(dir)/checkpoint. Resuming would repeat the same steps: train again with a lower --lr or --router-lr (and --overwrite)\n")
        let weights = try Safetensors.read(URL(fileURLWithPath: dir + "/checkpoint/adapter_model.safetensors"))
        for (key, t) in weights { XCTAssertNil(t.firstNonFiniteIndex(), key) }
    }

    /// NaN in a checkpoint's weights: `--resume` refuses it naming the tensor; `--allow-non-finite` loads it with a
    /// warning (and the run then diverges at once, which is reported too). `eval`, `infer` and `inspect` likewise.
    func testNonFiniteWeightsAreRefusedUnlessAllowed() throws {
        let dir = path("nan")
        XCTAssertEqual(run(["train"] + tiny + ["--output", dir, "--stop-after", "10"]).code, 130)
        for file in ["checkpoint/adapter_model.safetensors", "adapter_model.safetensors"] {
            let url = URL(fileURLWithPath: dir + "/" + file)
            var tensors = try Safetensors.read(url)
            var t = tensors["base_model.model.fc1.poly_lora_A"]!.scalars
            t[3] = .nan
            tensors["base_model.model.fc1.poly_lora_A"] = Tensor(t, shape: tensors["base_model.model.fc1.poly_lora_A"]!.shape)
            try Safetensors.write(tensors, to: url)
        }
        let refused = run(["train", "--resume", dir, "--quiet", "--no-baseline"])
        XCTAssertEqual(refused.code, 1)
        XCTAssertTrue(refused.err.hasPrefix("error: \(dir)/checkpoint/adapter_model.safetensors: tensor 'base_model.model.fc1.poly_lora_A' holds nan at flat index 3; non-finite weights are refused ('--allow-non-finite' loads them, with a warning)\n"), refused.err)
        let allowed = run(["train", "--resume", dir, "--quiet", "--no-baseline", "--allow-non-finite"])
        XCTAssertEqual(allowed.code, 1)
        XCTAssertTrue(allowed.err.hasPrefix("warning: \(dir)/checkpoint/adapter_model.safetensors: tensor 'base_model.model.fc1.poly_lora_A' holds nan at flat index 3 (loaded because of --allow-non-finite)\nerror: training diverged at step 11: "), allowed.err)
        for cmd in [["eval", "--adapter", dir, "--no-fewshot"], ["inspect", dir]] {
            let r = run(cmd)
            XCTAssertEqual(r.code, 1, cmd[0])
            XCTAssertTrue(r.err.contains("tensor 'base_model.model.fc1.poly_lora_A' holds nan at flat index 3"), r.err)
            let ok = run(cmd + ["--allow-non-finite", "--json"])
            XCTAssertEqual(ok.code, 0, ok.err)
            XCTAssertTrue(ok.err.hasPrefix("warning: "), ok.err)
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(ok.out.utf8)), "\(cmd[0]) --json prints valid JSON: \(ok.out)")
        }
    }

    /// `inspect` of a run folder checks the adapter against the config and the base network, as `eval` does.
    func testInspectChecksTheAdapterAgainstItsConfig() throws {
        let dir = path("inspect")
        XCTAssertEqual(run(["train"] + tiny + ["--output", dir]).code, 0)
        let configURL = URL(fileURLWithPath: dir + "/adapter_config.json")
        let config = try String(contentsOf: configURL, encoding: .utf8)
        let weightsURL = URL(fileURLWithPath: dir + "/adapter_model.safetensors")
        let weights = try Data(contentsOf: weightsURL)
        var tensors = try Safetensors.read(weightsURL)
        tensors["base_model.model.fc2.poly_lora_B"] = nil
        try Safetensors.write(tensors, to: weightsURL)
        var r = run(["inspect", dir])
        XCTAssertEqual(r.code, 1)
        XCTAssertEqual(r.err, "error: \(dir)/adapter_model.safetensors: missing tensor 'base_model.model.fc2.poly_lora_B'\n")
        try Safetensors.write([:], to: weightsURL)
        XCTAssertEqual(run(["inspect", dir]).code, 1)
        try weights.write(to: weightsURL)
        for (from, to) in [("\"r\": 2", "\"r\": 3"), ("\"n_tasks\": 18", "\"n_tasks\": 17"), ("\"fc2\"", "\"fc3\""),
                           ("\"peft_type\": \"POLY\"", "\"peft_type\": \"LORA\"")] {
            XCTAssertTrue(config.contains(from), from)
            try config.replacingOccurrences(of: from, with: to).write(to: configURL, atomically: true, encoding: .utf8)
            r = run(["inspect", dir])
            XCTAssertEqual(r.code, 1, "\(to): \(r.out)")
            XCTAssertTrue(r.err.hasPrefix("error: "), r.err)
        }
    }

    /// Run files are parsed strictly before decoding: a duplicated key is an error naming the file.
    func testRunFilesAreParsedStrictly() throws {
        let dir = path("strict")
        XCTAssertEqual(run(["train"] + tiny + ["--output", dir]).code, 0)
        let url = URL(fileURLWithPath: dir + "/polypeft_run.json")
        let text = try String(contentsOf: url, encoding: .utf8)
        try text.replacingOccurrences(of: "\"rank\" : 2,", with: "\"rank\" : 2, \"rank\" : 3,").write(to: url, atomically: true, encoding: .utf8)
        let r = run(["eval", "--adapter", dir, "--no-fewshot"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.hasPrefix("error: \(url.path): not a valid run description: invalid JSON (duplicate key \"rank\""), r.err)
    }

    func testCheckpointSchedule() {
        var s = CheckpointSchedule(steps: 100, seconds: 60, startStep: 40, now: 1000)
        XCTAssertFalse(s.isDue(step: 139, now: 1059.9))
        XCTAssertTrue(s.isDue(step: 140, now: 1001))
        XCTAssertTrue(s.isDue(step: 41, now: 1060))
        s.saved(step: 41, now: 1060)
        XCTAssertFalse(s.isDue(step: 140, now: 1061))
        XCTAssertFalse(CheckpointSchedule(steps: 0, seconds: 0, startStep: 0, now: 0).isDue(step: 1_000_000, now: 1e9))
    }

    // MARK: A real process

    /// The `polyctl` executable built beside the test bundle.
    func polyctlExecutable() throws -> URL {
        let url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("polyctl")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            XCTFail("no polyctl executable at \(url.path) (build it with the tests)")
            throw CocoaError(.fileNoSuchFile)
        }
        return url
    }

    func launch(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = try polyctlExecutable()
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Waits until `file` exists (or fails after `seconds`).
    func waitFor(_ file: String, seconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !FileManager.default.fileExists(atPath: file) {
            guard Date() < deadline else { XCTFail("\(file) did not appear"); throw CocoaError(.fileNoSuchFile) }
            usleep(2_000)
        }
    }

    /// SIGTERM saves and exits 143; SIGKILL right after a periodic checkpoint loses nothing that `--resume` cannot
    /// redo, and the resumed run ends bit-identical to an uninterrupted one.
    func testSignalsAgainstARealProcess() throws {
        let args = ["train", "--steps", "6000", "--batch-size", "32", "--eval-every", "0", "--no-baseline", "--quiet",
                    "--checkpoint-every", "300", "--checkpoint-seconds", "0"]
        let term = path("term")
        let p = try launch(["train", "--steps", "10000000", "--batch-size", "32", "--no-baseline", "--quiet", "--output", term])
        try waitFor(term + "/polypeft_run.json")   // written after the handlers are installed
        p.terminate()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 143)
        // However early the signal came (here: as soon as the run folder was set up), the run resumes.
        let stopped = try stateStep(term)
        let resumed1 = try launch(["train", "--resume", term, "--quiet", "--no-baseline", "--stop-after", "\(stopped + 5)"])
        resumed1.waitUntilExit()
        XCTAssertEqual(resumed1.terminationStatus, 130)
        XCTAssertEqual(try stateStep(term), stopped + 5)

        let reference = path("reference"), killed = path("killed")
        let r = try launch(args + ["--output", reference])
        r.waitUntilExit()
        XCTAssertEqual(r.terminationStatus, 0)
        let k = try launch(args + ["--output", killed])
        try waitFor(killed + "/checkpoint/trainer_state.json")
        kill(k.processIdentifier, SIGKILL)
        k.waitUntilExit()
        XCTAssertEqual(k.terminationReason, .uncaughtSignal)
        let resumed = try launch(["train", "--resume", killed, "--quiet", "--no-baseline"])
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        for f in ["adapter_model.safetensors", "checkpoint/optimizer.safetensors", "checkpoint/trainer_state.json"] {
            XCTAssertEqual(try bytes(reference, f), try bytes(killed, f), f)
        }
    }
}
