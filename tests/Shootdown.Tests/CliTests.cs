using Shootdown.Cli;
using Shootdown.Hardware;

namespace Shootdown.Tests;

[CollectionDefinition("console", DisableParallelization = true)]
public class ConsoleCollection
{
}

[Collection("console")]
public class CliTests
{
    internal static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        var o = new StringWriter();
        var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = ShootdownCli.RunAsync(args).GetAwaiter().GetResult();
            return (code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Theory]
    [InlineData("@.")]
    [InlineData("@/")]
    [InlineData("@/etc")]
    [InlineData("@/etc/hostname")]
    public void AnAtArgumentIsNotAResponseFile(string token)
    {
        // Found by RandomTokensNeverCrash: System.CommandLine read "@PATH" as a response file and
        // crashed (exit 1) when PATH was a directory; now it is an unknown command like any other.
        var (code, stdout, stderr) = Cli(token);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.StartsWith($"shootdown: unknown command '{token}'", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
    }

    [Theory]
    [InlineData("unknown machine preset 'nope'", "run", "--machine", "nope")]
    [InlineData("unknown workload 'w'", "run", "--workload", "w")]
    [InlineData("unknown policy 'p'", "run", "--policy", "p")]
    [InlineData("--pte-accessible-check must be on or off, got 'maybe'", "run", "--pte-accessible-check", "maybe")]
    [InlineData("--memcg must be on or off, got 'yes'", "run", "--memcg", "yes")]
    [InlineData("migrate-bounce needs at least 2 NUMA nodes; the machine has 1", "run", "--machine", "tiny", "--workload", "migrate-bounce")]
    [InlineData("malformed --scale '1/x'", "run", "--scale", "1/x")]
    [InlineData("--scale 1/N: N must be in 1..1048576, got 0", "run", "--scale", "1/0")]
    [InlineData("--nodes must be in 1..4096, got 0", "run", "--nodes", "0")]
    [InlineData("--cpus-per-node must be in 1..4096, got -3", "run", "--cpus-per-node", "-3")]
    [InlineData("malformed size '-1GiB'", "run", "--memory", "-1GiB")]
    [InlineData("memory too small", "run", "--machine", "tiny", "--memory", "1MiB")]
    [InlineData("unknown --format 'xml'", "run", "--format", "xml")]
    [InlineData("unknown cost constant 'Nope'", "run", "--cost", "Nope=3")]
    [InlineData("--cpu-speed must be a number in 0.1..10, got 'fast'", "run", "--cpu-speed", "fast")]
    [InlineData("--cpu-speed must be a number in 0.1..10, got '0'", "compare", "--cpu-speed", "0")]
    [InlineData("--cpu-speed must be a number in 0.1..10, got '1e400'", "run", "--cpu-speed", "1e400")]
    [InlineData("--cpu-speed must be a number in 0.1..10, got '1e-400'", "run", "--cpu-speed", "1e-400")]
    [InlineData("--cpu-speed must be a number in 0.1..10, got 'NaN'", "reproduce", "--cpu-speed", "NaN")]
    [InlineData("--seed must be an integer in 0..18446744073709551615, got 'abc'", "run", "--seed", "abc")]
    [InlineData("matches no event", "run", "--trace-events", "nope:*")]
    [InlineData("needs at least 3 CPUs", "run", "--workload", "lru-file-mmap-write", "--machine", "tiny", "--cpus-per-node", "2")]
    [InlineData("--oracle must be on or off", "run", "--oracle", "maybe")]
    [InlineData("--trace-window '3-1' is empty", "run", "--trace-window", "3-1")]
    [InlineData("--interval '7ms' must divide a second", "run", "--timeseries", "/tmp/shootdown-test.csv", "--interval", "7ms")]
    [InlineData("does not exist", "run", "--trace", "/nonexistent-dir/t.txt")]
    [InlineData("--input file 'missing.csv' does not exist", "plot", "--input", "missing.csv")]
    [InlineData("unknown --format 'xml'", "crosscheck", "--format", "xml")]
    [InlineData("unknown cost constant", "crosscheck", "--cost", "nope=1")]
    [InlineData("--jobs must be in 1..1024, got 0", "crosscheck", "--jobs", "0")]
    [InlineData("--seed", "crosscheck", "--seed", "-1")]
    [InlineData("--repeat must be in 1..1000, got 0", "crosscheck", "--repeat", "0")]
    [InlineData("--memcg must be on or off, got 'no'", "crosscheck", "--memcg", "no")]
    [InlineData("would run seeds past", "crosscheck", "--seed", "18446744073709551615", "--repeat", "2")]
    public void BadInputIsOneClearLineAndNonZeroExit(string expected, params string[] args) => AssertRefused(expected, args);

    /// <summary>Exit 2, one line on stderr holding <paramref name="expected"/>, no stack trace, nothing on stdout.</summary>
    internal static void AssertRefused(string expected, params string[] args)
    {
        var (code, stdout, stderr) = Cli(args);
        Assert.Equal(2, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Equal("", stdout);
    }

    [Theory]
    [InlineData("unknown policy 'x'", "compare", "--policies", "vanilla,x")]
    [InlineData("malformed --policies", "compare", "--policies", "vanilla,")]
    [InlineData("--repeat must be in 1..10000, got 0", "compare", "--repeat", "0")]
    [InlineData("unknown --format 'yaml'", "compare", "--format", "yaml")]
    [InlineData("--repeat must be in 1..10000, got -1", "reproduce", "--repeat", "-1")]
    public void CompareAndReproduceRejectBadInput(string expected, params string[] args) => AssertRefused(expected, args);

    [Fact]
    public void PoliciesListsOneLineEach()
    {
        var (code, stdout, _) = Cli("policies");
        Assert.Equal(0, code);
        Assert.Equal(7, stdout.TrimEnd('\n').Split('\n').Length);
        Assert.StartsWith("vanilla", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkloadsListsOneLineEach()
    {
        var (code, stdout, _) = Cli("workloads");
        Assert.Equal(0, code);
        string[] lines = stdout.TrimEnd('\n').Split('\n');
        Assert.Equal(["lru-file-mmap-read", "lru-file-readonce", "lru-file-mmap-write", "mprotect-race", "migrate-bounce", "numa-migrate", "sparse-truncate"], lines.Select(l => l.Split(' ')[0]));
    }

    [Fact]
    public void CompareCsvOnATinyMachine()
    {
        var (code, stdout, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla,linux-4.3", "--format", "csv");
        Assert.Equal(0, code);
        Assert.Contains("elapsed_s,linux-4.3,", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void CompareReportsTheCpuTimeAloneOnACore()
    {
        // tiny has one thread a core: at smt_throughput_pct 200 (its own) no step counts as alone,
        // at 115 every step does, and the row's mean is positive.
        static double Lone(string csv) => double.Parse(csv.Split('\n').Single(l => l.StartsWith("lone_thread_s,vanilla,", StringComparison.Ordinal)).Split(',')[2], System.Globalization.CultureInfo.InvariantCulture);
        var (code, flat, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla,linux-4.3", "--format", "csv");
        Assert.Equal(0, code);
        Assert.Equal(0, Lone(flat));
        var (code2, fast, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla,linux-4.3", "--format", "csv", "--cost", "smt_throughput_pct=115");
        Assert.Equal(0, code2);
        Assert.True(Lone(fast) > 0);
    }

    [Fact]
    public void UnknownOptionIsAParseError()
    {
        var (code, _, stderr) = Cli("run", "--frobnicate");
        Assert.Equal(2, code);
        Assert.Contains("--frobnicate", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void RunPrintsJsonWithoutProgress()
    {
        var (code, stdout, stderr) = Cli("run", "--machine", "tiny", "--scale", "1/4", "--format", "json", "--seed", "3");
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal("vanilla", doc.RootElement.GetProperty("policy").GetString());
        Assert.Equal(3UL, doc.RootElement.GetProperty("config").GetProperty("seed").GetUInt64());
        Assert.Equal(4, doc.RootElement.GetProperty("config").GetProperty("scale_divisor").GetInt32());
    }

    [Fact]
    public void OverridesReachTheConfig()
    {
        var (code, stdout, _) = Cli("run", "--machine", "tiny", "--nodes", "2", "--cpus-per-node", "2", "--memory", "64MiB", "--format", "json", "--scale", "1/1", "--cost", "IpiSendNs=70");
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        var cfg = doc.RootElement.GetProperty("config");
        Assert.Equal(2, cfg.GetProperty("nodes").GetInt32());
        Assert.Equal(2, cfg.GetProperty("cpus_per_node").GetInt32());
        Assert.Equal(64L << 20, cfg.GetProperty("memory_bytes").GetInt64());
        Assert.Equal(70, cfg.GetProperty("costs").GetProperty("ipi_send_ns").GetInt64());
    }

    [Fact]
    public void CpuSpeedScalesTheCoreBeforeCostOverrides()
    {
        var (code, stdout, err) = Cli("config", "--machine", "gorman-1node", "--cpu-speed", "2", "--cost", "FaultEntryNs=999", "--format", "json");
        Assert.True(code == 0, err);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        var costs = doc.RootElement.GetProperty("costs");
        CostModel c = CostModel.Xeon2015;
        Assert.Equal(999, costs.GetProperty("fault_entry_ns").GetInt64()); // --cost wins
        Assert.Equal(c.ClearPageNs / 2, costs.GetProperty("clear_page_ns").GetInt64());
        Assert.Equal(1400, costs.GetProperty("user_read_page_ns").GetInt64()); // the machine file's 2800, halved
        Assert.Equal(c.IpiLatencySameNodeNs, costs.GetProperty("ipi_latency_same_node_ns").GetInt64());
        Assert.Equal(c.CacheLineSameNodeNs, costs.GetProperty("cache_line_same_node_ns").GetInt64());
    }

    [Fact]
    public void TablesNameTheConstantsARunChanged()
    {
        var (code, plain, err) = Cli("run", "--machine", "tiny", "--scale", "1/8");
        Assert.True(code == 0, err);
        Assert.Matches(@"closing rm: from \(s\) / pages freed +│ +[0-9.]+ / [0-9,]+ │", plain); // lru-file-mmap-read's rm
        Assert.Matches(@"closing rm: system time per page \(ns\) +│ +[0-9,]+ │", plain);
        // vanilla's IPIs: the share that found interrupts off, then the repeats' split
        Assert.Matches(@"IPIs finding interrupts off / wait each \(us\) +│ +[0-9.]+% / [0-9.]+ │", plain);
        Assert.Matches(@"repeat IPIs / off among them / off among first +│ +[0-9.]+% / [0-9.]+% / [0-9.]+% │", plain);
        // reclaim's efficiency and the steady phase's stalled intervals
        Assert.Matches(@"reclaim efficiency \(reclaimed / scanned\) +│ +[0-9.]+% │", plain);
        Assert.Matches(@"steady intervals stalled +│ +[0-9]+ of [0-9]+ \([0-9]+%\) │", plain);
        Assert.Matches(@"interval \(s, x8\) / faults mean over p90 +│ +[0-9.]+ / [0-9.]+ │", plain);
        Assert.DoesNotContain("cost constants set for this run", plain, StringComparison.Ordinal);
        Assert.DoesNotContain("kernel-path constants x", plain, StringComparison.Ordinal);
        // Cores at another clock: the table says by how much the run scales the kernel paths.
        string slow = TestKit.TempFile("slow.toml", "name = \"slow\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\ncore_clock_mhz = 1700\n");
        (code, string clocked, err) = Cli("run", "--machine", slow, "--scale", "1/1");
        Assert.True(code == 0, err);
        Assert.Contains("cores at 1700 MHz: kernel-path constants x2.00 (stated for a 3400 MHz Ivy Bridge-class core)\n", clocked, StringComparison.Ordinal);
        // And cores that do less per clock: the factor has both.
        string older = TestKit.TempFile("older.toml", "name = \"older\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\ncore_clock_mhz = 1700\ncore_ipc_pct = 80\n");
        (code, string ipc, err) = Cli("run", "--machine", older, "--scale", "1/1");
        Assert.True(code == 0, err);
        Assert.Contains("cores at 1700 MHz doing 80% of the reference core's work per clock: kernel-path constants x2.50 (stated for a 3400 MHz Ivy Bridge-class core)\n", ipc, StringComparison.Ordinal);
        Assert.DoesNotContain("cost constants set for this run", ipc, StringComparison.Ordinal); // the machine's own, not an override
        Assert.DoesNotContain("cost constants set for this run", clocked, StringComparison.Ordinal);
        (code, string changed, err) = Cli("run", "--machine", "tiny", "--scale", "1/8", "--cost", "ClearPageNs=500");
        Assert.True(code == 0, err);
        Assert.Contains("cost constants set for this run (the machine's -> this run's): ClearPageNs 600 -> 500\n", changed, StringComparison.Ordinal);
        (code, string compared, err) = Cli("compare", "--machine", "tiny", "--scale", "1/8", "--policies", "vanilla", "--cpu-speed", "2");
        Assert.True(code == 0, err);
        Assert.Contains("FaultEntryNs 1414 -> 707", compared, StringComparison.Ordinal);
        Assert.DoesNotContain("IpiSendNs", compared, StringComparison.Ordinal);
    }

    private static readonly string Big = new('x', 100_000);

    /// <summary>The cases of issue 14, each tried as a new user would: one line naming the value and what is allowed, exit 2, nothing simulated.</summary>
    [Theory]
    [InlineData("TlbEntries=1000 with TlbWays=4 gives 250 sets", "run", "--cost", "TlbEntries=1000")]
    [InlineData("TlbEntries=512 with TlbWays=7 gives", "run", "--cost", "TlbWays=7")]
    [InlineData("--cost TlbEntries must be in 1..1048576, got 0", "run", "--cost", "TlbEntries=0")]
    [InlineData("--cost TickNs must be in 1000..1000000000, got 0", "run", "--cost", "TickNs=0")]
    [InlineData("--cost IpiLatencyRemoteNodeNs must be in 0..1000000000, got 9223372036854775807", "run", "--cost", "IpiLatencyRemoteNodeNs=9223372036854775807")]
    [InlineData("--cost ClearPageNs must be in 0..1000000000, got 9223372036854775807", "run", "--cost", "ClearPageNs=9223372036854775807")]
    [InlineData("--cost ClearPageNs must be in 0..1000000000, got 99999999999999999999999", "run", "--cost", "clear_page_ns=99999999999999999999999")]
    [InlineData("--cost IpiSendNs must be an integer in 0..1000000000, got '1.5'", "run", "--cost", "IpiSendNs=1.5")]
    [InlineData("unknown cost constant 'Nope'", "run", "--cost", "Nope=3")]
    [InlineData("--nodes must be in 1..4096, got 99999999999", "run", "--nodes", "99999999999")]
    [InlineData("--scale 1/N: N must be in 1..1048576, got 99999999999", "run", "--scale", "1/99999999999")]
    [InlineData("--seed must be in 0..18446744073709551615, got 18446744073709551616", "run", "--seed", "18446744073709551616")]
    [InlineData("--repeat must be in 1..10000, got 99999999999", "compare", "--repeat", "99999999999")]
    [InlineData("would run seeds past 18446744073709551615 (seeds must not wrap)", "compare", "--seed", "18446744073709551615", "--repeat", "2")]
    [InlineData("would run seeds past", "reproduce", "--seed", "18446744073709551614", "--repeat", "3")]
    [InlineData("--full runs the machine at full size, --scale 1/64 asks for less", "reproduce", "--full", "--scale", "1/64")]
    [InlineData("--interval sets the rows of --timeseries", "run", "--interval", "2s")]
    [InlineData("--interval '7200s' is too long; at most 3600s", "run", "--timeseries", "/tmp/shootdown-test.csv", "--interval", "7200s")]
    [InlineData("--trace-window selects what --trace and --perfetto write", "run", "--trace-window", "1-2")]
    [InlineData("--trace-events selects what --trace and --perfetto write", "run", "--trace-events", "tlb:*")]
    [InlineData("--trace-window times must be in 0..1000000 s", "run", "--trace", "/tmp/shootdown-test.txt", "--trace-window", "1-99999999999999999999")]
    [InlineData("--batch-size sets the PFN list of rfc-pfn32, rfc-pfn-page and v6-pfn32; policy 'vanilla' keeps no such list", "run", "--batch-size", "16")]
    [InlineData("none of these policies keeps no such list", "compare", "--policies", "vanilla,linux-4.3", "--batch-size", "16")]
    [InlineData("--last sets how much history --stop-on-violation prints", "run", "--last", "5")]
    [InlineData("--last must be in 1..100000, got 0", "run", "--stop-on-violation", "--last", "0")]
    [InlineData("memory too small: 256 bytes (after --scale 1/4) over 1 node leaves 256 bytes per node", "run", "--machine", "tiny", "--scale", "1/4", "--memory", "1KiB")]
    [InlineData("size '99999999TiB' is too large; at most 1 PiB", "run", "--memory", "99999999TiB")]
    [InlineData("unknown command 'frob'; commands: run, compare, reproduce", "frob")]
    [InlineData("no command given; commands: run, compare", new string[0])]
    [InlineData("cannot write --trace '/proc/shootdown-x'", "run", "--trace", "/proc/shootdown-x")]
    [InlineData("cannot write --perfetto '/proc/shootdown-x'", "run", "--perfetto", "/proc/shootdown-x")]
    [InlineData("cannot write --timeseries '/proc/shootdown-x'", "run", "--timeseries", "/proc/shootdown-x")]
    [InlineData("cannot write --vmstat '/proc/shootdown-x'", "run", "--vmstat", "/proc/shootdown-x")]
    [InlineData("cannot write --interrupts '/proc/shootdown-x'", "run", "--interrupts", "/proc/shootdown-x")]
    [InlineData("cannot write --vmstat '/tmp': it is a directory", "run", "--vmstat", "/tmp")]
    [InlineData("--vmstat and --interrupts both name", "run", "--vmstat", "/tmp/shootdown-same", "--interrupts", "/tmp/shootdown-same")]
    [InlineData("--plot '/etc/hostname' is a file; it must name a directory", "compare", "--plot", "/etc/hostname")]
    [InlineData("--min-free-kbytes must be in 128..16777216 (a quarter of the full-size machine's memory, in KiB), got 20000000", "run", "--min-free-kbytes", "20000000")]
    [InlineData("--min-free-kbytes must be in 128..2147483647, got 64", "compare", "--min-free-kbytes", "64")]
    [InlineData("cannot write into --plot '/proc/shootdown-plots'", "compare", "--plot", "/proc/shootdown-plots")]
    public void IssueCasesAreOneClearLine(string expected, params string[] args) => AssertRefused(expected, args);

    [Fact]
    public void PlotOutNamingAFileOrAnUnwritablePlaceIsRefusedBeforePlotting()
    {
        string dir = TestKit.TempDir();
        string csv = Path.Combine(dir, "a.csv");
        File.WriteAllText(csv, "time_s,interrupts\n0,1\n0.1,2\n");
        var (code, _, stderr) = Cli("plot", "--input", csv, "--out", csv);
        Assert.Equal(2, code);
        Assert.Contains($"--out '{csv}' is a file; it must name a directory", stderr, StringComparison.Ordinal);
        (code, _, stderr) = Cli("plot", "--input", csv, "--out", "/proc/shootdown-plots");
        Assert.Equal(2, code);
        Assert.Contains("cannot write into --out '/proc/shootdown-plots'", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.Equal("time_s,interrupts\n0,1\n0.1,2\n", File.ReadAllText(csv));
    }

    [Fact]
    public void LongValuesAreShortenedInErrors()
    {
        foreach (string[] args in new[] { new[] { "run", "--machine", Big }, ["run", "--cost", Big], ["run", Big], ["run", "--cost", "IpiSendNs=" + new string('9', 100_000)], [Big] })
        {
            var (code, _, stderr) = Cli(args);
            Assert.Equal(2, code);
            Assert.True(stderr.Length < 400, $"{stderr.Length} characters: {stderr[..Math.Min(200, stderr.Length)]}");
            Assert.Contains("(100", stderr, StringComparison.Ordinal);
            Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        }
    }

    [Fact]
    public void CostAcceptsSnakeCaseAndTlbGeometriesThatFit()
    {
        var (code, stdout, stderr) = Cli("run", "--machine", "tiny", "--scale", "1/4", "--format", "json", "--cost", "ipi_send_ns=70", "--cost", "TlbEntries=1024", "--cost", "tlb_ways=8");
        Assert.True(code == 0, stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        var costs = doc.RootElement.GetProperty("config").GetProperty("costs");
        Assert.Equal(70, costs.GetProperty("ipi_send_ns").GetInt64());
        Assert.Equal(1024, costs.GetProperty("tlb_entries").GetInt32());
        Assert.Equal(8, costs.GetProperty("tlb_ways").GetInt32());
    }

    [Fact]
    public void HelpSaysShootdownAndShowsTheBatchSizeDefault()
    {
        var (code, stdout, _) = Cli("run", "--help");
        Assert.Equal(0, code);
        Assert.Contains("shootdown run [options]", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Shootdown.Cli", stdout, StringComparison.Ordinal);
        Assert.Contains("default: 32 for rfc-pfn32", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void ATraceWindowPastTheEndIsWarnedAbout()
    {
        string f = Path.Combine(TestKit.TempDir(), "t.txt");
        var (code, _, stderr) = Cli("run", "--machine", "tiny", "--scale", "1/4", "--format", "json", "--trace", f, "--trace-window", "1000-1001");
        Assert.Equal(0, code);
        Assert.Contains("warning: --trace-window starts at 1000 s, after the run ended at", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void OutputFileChecksLeaveNoFileBehindWhenTheRunIsRefused()
    {
        string f = Path.Combine(TestKit.TempDir(), "vm.txt");
        var (code, _, _) = Cli("run", "--vmstat", f, "--nodes", "0");
        Assert.Equal(2, code);
        Assert.False(File.Exists(f));
    }

    [Fact]
    public void ARunStoppedByAViolationExits4()
    {
        var (code, stdout, stderr) = Cli("run", "--workload", "lru-file-mmap-write", "--policy", "rfc-pfn32", "--machine", "small-2node", "--scale", "1/16", "--stop-on-violation", "lost_write", "--format", "json", "--last", "3");
        Assert.Equal(ShootdownCli.ExitStoppedByViolation, code);
        Assert.Contains("lost_write at ", stderr, StringComparison.Ordinal);
        Assert.Contains("last 3 events of this frame", stderr, StringComparison.Ordinal);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.True(doc.RootElement.GetProperty("safety").GetProperty("stopped").GetBoolean());
    }

    [Fact]
    public void ReproduceExits5ExactlyWhenACheckIsOutOfTolerance()
    {
        // A user read a thousand times too slow puts the user-time checks out of tolerance whatever the model's fit.
        var (code, stdout, _) = Cli("reproduce", "--scale", "1/256", "--cost", "UserReadPageNs=3000000");
        var m = System.Text.RegularExpressions.Regex.Matches(stdout, @"(\d+) of (\d+) checks within tolerance");
        Assert.True(m.Count == 2, stdout); // the 4-node machine, then the 1-node machine
        Assert.Equal(["13", "9"], m.Select(x => x.Groups[2].Value));
        bool all = m.All(x => x.Groups[1].Value == x.Groups[2].Value);
        Assert.Equal(all ? 0 : ShootdownCli.ExitOutOfTolerance, code);
        Assert.False(all);
    }

    [Fact]
    public void OracleRowsAppearOnlyWhenTheOracleRan()
    {
        var (_, off, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla,linux-4.3", "--format", "csv");
        Assert.DoesNotContain("violations", off, StringComparison.Ordinal);
        var (_, on, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla,linux-4.3", "--format", "csv", "--oracle", "on");
        Assert.Contains("violations,linux-4.3,0,", on, StringComparison.Ordinal);
        var (_, json, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla", "--format", "json");
        Assert.DoesNotContain("lost_write", json, StringComparison.Ordinal);
    }
}
