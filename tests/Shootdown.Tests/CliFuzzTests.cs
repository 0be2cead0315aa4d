using CsCheck;
using Shootdown.Cli;

namespace Shootdown.Tests;

/// <summary>
/// Property-based fuzzing of the CLI, in process: any command line holding one invalid element,
/// mixed with valid options and random tokens, exits 2 with exactly one line on stderr, no stack
/// trace, nothing on stdout, and quickly (a refused command never starts a simulation).
/// </summary>
[Collection("console")]
public class CliFuzzTests
{
    private static readonly string[][] Invalid =
    [
        ["--nodes", "0"], ["--nodes", "-1"], ["--nodes", "x"], ["--nodes", "99999999999999999999"],
        ["--cpus-per-node", "4097"], ["--scale", "1/0"], ["--scale", "1/x"], ["--scale", "1/99999999999"],
        ["--seed", "-1"], ["--seed", "18446744073709551616"], ["--memory", "0"], ["--memory", "1KiB"], ["--memory", "1e9"],
        ["--cost", "Nope=1"], ["--cost", "TickNs=0"], ["--cost", "TlbEntries=1536x"], ["--cost", "TlbWays=7"],
        ["--cost", "ClearPageNs=9223372036854775807"], ["--cost", "=5"], ["--cost", "IpiSendNs=-1"],
        ["--policy", "nope"], ["--workload", "nope"], ["--machine", "nope"], ["--format", "xml"],
        ["--batch-size", "0"], ["--swap-cluster-max", "0"], ["--flush-ceiling", "-1"], ["--oracle", "maybe"],
        ["--interval", "2s"], ["--trace-window", "1-2"], ["--last", "3"], ["--repeat", "0"],
        ["--policies", "vanilla,,x"], ["--frobnicate"], ["--trace", "/proc/shootdown-fuzz"],
        ["--vmstat", "/proc/shootdown-fuzz"], ["--plot", "/etc/hostname"], ["--input", "/nonexistent.csv"],
        ["--machine", "/nonexistent/m.toml"], ["--config", "/nonexistent/c.toml"],
        ["--max-evaluations", "0"], ["--search-scale-factor", "0"],
    ];

    private static readonly string[][] Valid =
    [
        ["--machine", "tiny"], ["--scale", "1/4"], ["--seed", "3"], ["--format", "json"], ["--policy", "linux-4.3"],
        ["--workload", "lru-file-mmap-read"], ["--policies", "vanilla,linux-4.3"], ["--cost", "IpiSendNs=70"], ["--progress"],
    ];

    private static readonly string[] HelpTokens = ["-h", "-?", "--help", "/h", "/?", "--version"];

    /// <summary>A help or version request, also bundled ("-?x", "-hx" under POSIX option bundling): answered, not refused.</summary>
    private static bool IsHelpRequest(string t) =>
        HelpTokens.Contains(t) || t.StartsWith("-?", StringComparison.Ordinal) || t.StartsWith("/?", StringComparison.Ordinal)
        || t.StartsWith("-h", StringComparison.Ordinal);

    [Fact]
    public void InvalidCommandLinesAreOneLineAndExit2()
    {
        var gen = Gen.Select(
            Gen.OneOf("run", "compare", "reproduce", "sensitivity", "calibrate", "crosscheck", "plot", "policies", "workloads", "runn"),
            Gen.OneOf(Invalid),
            Gen.OneOf(Valid),
            Gen.OneOf(Valid),
            Gen.String[0, 12],
            Gen.Int[0, 3],
            Gen.Int[0, 3]);
        gen.Sample((cmd, invalid, v1, v2, random, fill, pos) =>
        {
            if (IsHelpRequest(random))
            {
                return;
            }
            var parts = new List<string[]> { v1, v2, new[] { random } }.Take(fill).ToList();
            parts.Insert(Math.Min(pos, parts.Count), invalid);
            string[] args = [cmd, .. parts.SelectMany(p => p)];
            var task = Task.Run(() => CliTests.Cli(args));
            Assert.True(task.Wait(TimeSpan.FromSeconds(20)), $"no answer within 20 s: {string.Join(' ', args)}");
            var (code, stdout, stderr) = task.Result;
            string shown = string.Join(" ", args.Select(a => $"'{a}'"));
            Assert.True(code == 2, $"exit {code} for {shown}: {stderr}");
            Assert.True(stderr.TrimEnd('\n').Split('\n').Length == 1, $"not one line for {shown}: {stderr}");
            Assert.StartsWith("shootdown: ", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
            Assert.True(stdout.Length == 0, $"stdout for {shown}: {stdout}");
        }, iter: 400, threads: 1);
    }

    [Fact]
    public void RandomTokensNeverCrash()
    {
        Gen.Select(Gen.String[0, 30], Gen.String[0, 30], Gen.String[0, 30]).Sample((a, b, c) =>
        {
            string[] args = [a, b, c];
            if (args.Any(IsHelpRequest))
            {
                return;
            }
            var task = Task.Run(() => CliTests.Cli(args));
            Assert.True(task.Wait(TimeSpan.FromSeconds(20)), "hang");
            var (code, _, stderr) = task.Result;
            Assert.Equal(2, code);
            Assert.Single(stderr.TrimEnd('\n').Split('\n'));
            Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        }, iter: 300, threads: 1);
    }
}
