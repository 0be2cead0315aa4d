using System.Diagnostics;
using DuckDB.NET.Data;
using Shootdown.Cli;
using Shootdown.Hardware;

namespace Shootdown.Tests;

/// <summary>`shootdown sweep`: the sweep file, the store, kill -9 and resume, shards and merge, export and plot.</summary>
[Collection("console")]
public class SweepTests
{
    /// <summary>The issue's sweep file, as written.</summary>
    private const string IssueSweep = """
        [sweep]
        workload = "lru-file-mmap-read"
        machine = "tiny"
        scale = "1/4"
        policies = ["vanilla", "linux-4.3"]
        seeds = [1, 2, 3]
        """;

    /// <summary>The same sweep at 1/16 with a fourth seed (8 runs), for the tests that run it several times.</summary>
    private static readonly string SmallSweep = IssueSweep.Replace("\"1/4\"", "\"1/16\"", StringComparison.Ordinal).Replace("[1, 2, 3]", "[1, 2, 3, 4]", StringComparison.Ordinal);

    private static (int Code, string Out, string Err) Cli(params string[] args) => CliTests.Cli(args);

    private static List<SweepRow> Rows(string store)
    {
        using SweepStore s = SweepStore.Open(store, "test");
        return s.Rows();
    }

    [Fact]
    public void TheIssuesSweepFileRunsAsWrittenAndARestartRepeatsNothing()
    {
        string file = TestKit.TempFile("sweep.toml", IssueSweep);
        string store = Path.Combine(Path.GetDirectoryName(file)!, "r.duckdb");
        var (code, stdout, _) = Cli("sweep", file, "--store", store, "--jobs", "2");
        Assert.Equal(0, code);
        Assert.Contains("6 runs stored", stdout, StringComparison.Ordinal);
        List<SweepRow> rows = Rows(store);
        Assert.Equal(6, rows.Count);
        Assert.Equal(6, rows.Select(r => r.Key).Distinct().Count());
        var first = rows[0].Columns.ToDictionary(c => c.Key, c => c.Value);
        Assert.Equal("vanilla", first["config.policy_name"]);
        Assert.Equal(1L, first["config.seed"]);
        Assert.Equal(4L, first["config.scale_divisor"]);
        Assert.True(first.ContainsKey("tlb_ipis_per_s") && first.ContainsKey("vmstat.pgscan_direct") && first.ContainsKey("config_json") && first.ContainsKey("host_wall_s"));
        // The config stored is the one `run --config` replays.
        Assert.Equal(rows[0].Key, SweepFile.Key(ConfigFile.ToJson(ConfigFile.FromJson((string)first["config_json"], "row"))));

        (code, stdout, _) = Cli("sweep", file, "--store", store);
        Assert.Equal(0, code);
        Assert.Contains("0 runs stored, 6 were already in", stdout, StringComparison.Ordinal);
        Assert.Equal(6, Rows(store).Count);
    }

    [Fact]
    public void AxesCoverNestedCostsMemoryAndMachineShape()
    {
        string file = TestKit.TempFile("sweep.toml", """
            [sweep]
            machine = "tiny"
            scale = 16
            memory = "256MiB"
            cpus_per_node = [2, 4]
            costs.ipi_send_ns = [60, 120]
            policy = "rfc-pfn32"
            batch_sizes = [16, 32]
            """);
        Assert.Equal(8, SweepFile.Load(TestKit.TempFile("small.toml", SmallSweep)).Count);
        IReadOnlyList<SweepRun> runs = SweepFile.Load(file);
        Assert.Equal(8, runs.Count);
        Assert.Equal([2, 2, 2, 2, 4, 4, 4, 4], runs.Select(r => r.Config.CpusPerNode));
        Assert.Equal([60L, 60, 120, 120, 60, 60, 120, 120], runs.Select(r => r.Config.Costs.IpiSendNs));
        Assert.Equal([16, 32, 16, 32, 16, 32, 16, 32], runs.Select(r => r.Config.Policy.BatchSize ?? 0));
        Assert.All(runs, r => Assert.Equal(256L << 20 >> 4, r.Config.MemoryBytes));
        Assert.Equal(8, runs.Select(r => r.Key).Distinct().Count());
    }

    [Fact]
    public void VariantsAreAFirstAxisOfAlternativesOverTheBase()
    {
        string file = TestKit.TempFile("sweep.toml", """
            [sweep]
            machine = "tiny"
            scale = 16
            policy = "vanilla"
            seeds = [1, 2]
            costs.ipi_send_ns = 90

            [[sweep.variants]]   # the base as it is

            [[sweep.variants]]
            costs.ipi_send_ns = 200

            [[sweep.variants]]
            costs.lru_per_page_ns = 100
            policy = "linux-4.3"
            """);
        IReadOnlyList<SweepRun> runs = SweepFile.Load(file);
        // Variants vary slowest, every variant at every seed.
        Assert.Equal([0, 1, 2, 3, 4, 5], runs.Select(r => r.Index));
        Assert.Equal([1, 2, 1, 2, 1, 2], runs.Select(r => r.Config.Seed));
        // A variant's key replaces the base's; the keys it does not set are the base's.
        Assert.Equal([90L, 90, 200, 200, 90, 90], runs.Select(r => r.Config.Costs.IpiSendNs));
        long lruDefault = new CostModel().LruPerPageNs;
        Assert.Equal([lruDefault, lruDefault, lruDefault, lruDefault, 100, 100], runs.Select(r => r.Config.Costs.LruPerPageNs));
        Assert.Equal(["vanilla", "vanilla", "vanilla", "vanilla", "linux-4.3", "linux-4.3"], runs.Select(r => r.Config.PolicyName));
        Assert.Equal(6, runs.Select(r => r.Key).Distinct().Count());
    }

    [Fact]
    public void EachVariantsRowSaysWhichVariantItRan()
    {
        string file = TestKit.TempFile("sweep.toml", """
            [sweep]
            machine = "tiny"
            scale = 16
            policy = "vanilla"

            [[sweep.variants]]

            [[sweep.variants]]
            costs.ipi_send_ns = 200
            """);
        string store = Path.Combine(Path.GetDirectoryName(file)!, "r.duckdb");
        var (code, _, _) = Cli("sweep", file, "--store", store, "--jobs", "2");
        Assert.Equal(0, code);
        List<SweepRow> rows = Rows(store);
        Assert.Equal(2, rows.Count);
        var cols = rows.Select(r => r.Columns.ToDictionary(c => c.Key, c => c.Value)).ToList();
        Assert.Equal([1L, 2L], cols.Select(c => (long)c["variant"]));
        Assert.Equal([new CostModel().IpiSendNs, 200L], cols.Select(c => (long)c["config.costs.ipi_send_ns"]));
        // A sweep without variants has no such column.
        Assert.DoesNotContain(SweepFile.Load(TestKit.TempFile("small.toml", SmallSweep)), r => r.Variant is not null);
    }

    [Fact]
    public void AVariantsMemoryBytesReplacesTheBasesMemory()
    {
        IReadOnlyList<SweepRun> runs = SweepFile.Load(TestKit.TempFile("sweep.toml", """
            [sweep]
            machine = "tiny"
            scale = 16
            policy = "vanilla"
            memory = "256MiB"

            [[sweep.variants]]
            costs.ipi_send_ns = 100

            [[sweep.variants]]
            memory_bytes = 67108864
            """));
        Assert.Equal([256L << 20 >> 4, 67108864L], runs.Select(r => r.Config.MemoryBytes));
    }

    [Fact]
    public void AStoreThatGrewIntoVariantsMergesWithAFreshOne()
    {
        const string Base = """
            [sweep]
            machine = "tiny"
            scale = 16
            policy = "vanilla"
            seeds = [1, 2]

            """;
        string grown = TestKit.TempFile("g1.toml", Base);
        string dir = Path.GetDirectoryName(grown)!;
        string g = Path.Combine(dir, "g.duckdb"), h = Path.Combine(dir, "h.duckdb");
        Assert.Equal(0, Cli("sweep", grown, "--store", g).Code);
        string withVariants = TestKit.TempFile("g2.toml", Base + "[[sweep.variants]]\n\n[[sweep.variants]]\ncosts.ipi_send_ns = 200\n");
        Assert.Equal(0, Cli("sweep", withVariants, "--store", g).Code); // runs only variant 2's two runs
        Assert.Equal(0, Cli("sweep", withVariants, "--store", h).Code);
        Assert.Equal(4, Rows(g).Count);
        // The same runs at other places in their files (variant NULL against 1) are the same results.
        var (code, stdout, _) = Cli("sweep", "merge", Path.Combine(dir, "m.duckdb"), g, h);
        Assert.Equal(0, code);
        Assert.Contains("4 rows merged", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TheFourSocketGapWhatIfSweepIsTheReadmesTable()
    {
        IReadOnlyList<SweepRun> gap = SweepFile.Load(Path.Combine(RepoRoot(), "sweeps", "gorman-4node-gap-what-if.toml"));
        Assert.Equal(7 * 2 * 3, gap.Count);
        Assert.All(gap, r => Assert.Equal(16, r.Config.ScaleDivisor));
        // Each variant is six runs (two policies, three seeds), in the file's order.
        CostModel[] v = [.. gap.Where((_, i) => i % 6 == 0).Select(r => r.Config.Costs)];
        Assert.Equal([160L, 80, 80, 80, 80, 80, 80], v.Select(c => c.LruPerPageNs));
        Assert.Equal([160L, 80, 80, 80, 80, 80, 80], v.Select(c => c.PageFreeNs));
        var d = new CostModel();
        Assert.Equal([d.ZoneLockPerPageNs, d.ZoneLockPerPageNs, 240, d.ZoneLockPerPageNs, d.ZoneLockPerPageNs, d.ZoneLockPerPageNs, d.ZoneLockPerPageNs], v.Select(c => c.ZoneLockPerPageNs));
        Assert.Equal(640, v[3].UnmapPageNs);
        Assert.Equal(600, v[4].RemoveMappingNs);
        Assert.Equal(480, v[5].ScanPageNs);
        Assert.Equal(1500, v[6].ReadpageHoleNs);
        // Apart from the key each variant names, every run is the base: the variants differ in one place.
        Assert.Equal(d.UnmapPageNs, v[2].UnmapPageNs);
        Assert.Equal(d.ReadpageHoleNs, v[5].ReadpageHoleNs);
    }

    /// <summary>The repository's root: the directory above the test binaries that holds Shootdown.slnx.</summary>
    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Shootdown.slnx")))
            {
                return d.FullName;
            }
        }
        throw new InvalidOperationException("Shootdown.slnx not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void EverySweepFileInTheRepositoryBuildsItsRuns()
    {
        string[] files = Directory.GetFiles(Path.Combine(RepoRoot(), "sweeps"), "*.toml");
        Assert.NotEmpty(files);
        foreach (string f in files)
        {
            Assert.NotEmpty(SweepFile.Load(f));
        }
        // The README's what-if of the cross-socket IPI delivery: two policies by three latencies.
        IReadOnlyList<SweepRun> ipi = SweepFile.Load(Path.Combine(RepoRoot(), "sweeps", "gorman-4node-ipi-what-if.toml"));
        Assert.Equal(new long[] { 1000, 1000, 1500, 1500, 2000, 2000 }, ipi.Select(r => r.Config.Costs.IpiLatencyRemoteNodeNs).Order());
        Assert.All(ipi, r => Assert.Equal(16, r.Config.ScaleDivisor));
    }

    [Theory]
    [InlineData("sweep.toml:3: key 'nope': unknown key", "[sweep]\nmachine = \"tiny\"\nnope = [1]\n")]
    [InlineData("sweep.toml:2: key 'costs.bogus_ns': unknown key", "[sweep]\ncosts.bogus_ns = [1, 2]\n")]
    [InlineData("sweep.toml:2: axis 'seeds' is an empty list", "[sweep]\nseeds = []\n")]
    [InlineData("sweep.toml:1: 'machine' is not allowed at the top level; a sweep file has one [sweep] table", "machine = \"tiny\"\n")]
    [InlineData("no [sweep] table", "# nothing\n")]
    [InlineData("sweep.toml:3: key 'seed': expected an integer", "[sweep]\nmachine = \"tiny\"\nseeds = [\"x\"]\n")]
    [InlineData("unknown policy 'nope'", "[sweep]\npolicies = [\"vanilla\", \"nope\"]\n")]
    [InlineData("have the same configuration", "[sweep]\nmachine = \"tiny\"\nseeds = [1, 1]\n")]
    [InlineData("sweep.toml:2: key 'scale': malformed --scale", "[sweep]\nscale = \"1/x\"\n")]
    [InlineData("not valid TOML", "[sweep\n")]
    [InlineData("sweep.toml:5: variant 1 sets 'seed', which an axis varies", "[sweep]\nmachine = \"tiny\"\nseeds = [1, 2]\n[[sweep.variants]]\nseed = 3\n")]
    [InlineData("sweep.toml:6: variant 1 sets 'policy', which an axis varies", "[sweep]\nmachine = \"tiny\"\npolicies = [\"vanilla\", \"linux-4.3\"]\n[[sweep.variants]]\ncosts.ipi_send_ns = 60\npolicy = \"rfc-pfn32\"\n")]
    [InlineData("sweep.toml:6: variant 2: key 'costs.ipi_send_ns' is a list", "[sweep]\nmachine = \"tiny\"\n[[sweep.variants]]\ncosts.ipi_send_ns = 60\n[[sweep.variants]]\ncosts.ipi_send_ns = [60, 90]\n")]
    [InlineData("'variants' must be an array of tables", "[sweep]\nmachine = \"tiny\"\nvariants = [1, 2]\n")]
    [InlineData("'variants' is empty", "[sweep]\nmachine = \"tiny\"\nvariants = []\n")]
    [InlineData("have the same configuration (variants 1 and 2 set the same values; make them differ)", "[sweep]\nmachine = \"tiny\"\n[[sweep.variants]]\ncosts.ipi_send_ns = 60\n[[sweep.variants]]\ncosts.ipi_send_ns = 60\n")]
    [InlineData("sweep.toml:5: key 'costs.bogus_ns': unknown key", "[sweep]\nmachine = \"tiny\"\n[[sweep.variants]]\n\ncosts.bogus_ns = 1\n")]
    [InlineData("sweep.toml:10: key 'scale': malformed --scale", "[sweep]\nmachine = \"tiny\"\npolicy = \"vanilla\"\nseeds = [1, 2]\n\n[[sweep.variants]]\nscale = \"1/16\"\n\n[[sweep.variants]]\nscale = \"1/x\"\n")]
    [InlineData("sweep.toml:10: key 'costs.lru_per_page_ns'", "[sweep]\nmachine = \"tiny\"\n\n[[sweep.variants]]\ncosts.lru_per_page_ns = 100\n\n[[sweep.variants]]\n\n[sweep.costs]\nlru_per_page_ns = -3\n")]
    [InlineData("key '[[sweep': unknown key", "[sweep]\nmachine = \"tiny\"\n\"[[sweep.variants]]\" = [1, 2]\n")]
    [InlineData("variant 1 sets 'memory', which an axis varies", "[sweep]\nmachine = \"tiny\"\nmemory_bytes = [16777216, 33554432]\n[[sweep.variants]]\nmemory = \"1GiB\"\n")]
    public void BadSweepFilesAreOneClearLineBeforeRunning(string expected, string text)
    {
        string file = TestKit.TempFile("sweep.toml", text);
        string store = Path.Combine(Path.GetDirectoryName(file)!, "r.duckdb");
        CliTests.AssertRefused(expected, "sweep", file, "--store", store);
        Assert.False(File.Exists(store));
    }

    [Theory]
    [InlineData("malformed --shard 'x'", "--shard", "x")]
    [InlineData("--shard 4/3: K must be in 1..N", "--shard", "4/3")]
    [InlineData("--shard 0/3: K must be in 1..N", "--shard", "0/3")]
    [InlineData("--jobs must be in 1..1024, got 0", "--jobs", "0")]
    [InlineData("cannot open --store '/nonexistent-dir/r.duckdb': directory", "--store", "/nonexistent-dir/r.duckdb")]
    public void BadSweepOptionsAreOneClearLine(string expected, string opt, string value)
    {
        string file = TestKit.TempFile("sweep.toml", SmallSweep);
        string[] store = opt == "--store" ? [] : ["--store", Path.Combine(Path.GetDirectoryName(file)!, "r.duckdb")];
        CliTests.AssertRefused(expected, ["sweep", file, .. store, opt, value]);
    }

    /// <summary>Starts `shootdown` as a separate process (the CLI built beside the tests).</summary>
    private static Process Start(string dir, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Shootdown.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = dir, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return Process.Start(psi)!;
    }

    private static (int Code, string Out, string Err) RunProcess(string dir, params string[] args)
    {
        using Process p = Start(dir, args);
        Task<string> err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "sweep process hung");
        return (p.ExitCode, stdout, err.Result);
    }

    [Fact]
    public void ASweepKilledWithSigkillMidwayAndRestartedEndsWithExactlyOneRowPerRun()
    {
        string file = TestKit.TempFile("sweep.toml", SmallSweep);
        string dir = Path.GetDirectoryName(file)!;
        string store = Path.Combine(dir, "r.duckdb");
        using (Process p = Start(dir, "sweep", file, "--store", store, "--jobs", "1"))
        {
            // Kill once two rows are committed, while the next runs are in flight.
            var stored = new List<string>();
            string? line;
            while ((line = p.StandardError.ReadLine()) is not null)
            {
                if (line.Contains(" stored", StringComparison.Ordinal))
                {
                    stored.Add(line);
                    if (stored.Count == 2)
                    {
                        p.Kill(entireProcessTree: true); // SIGKILL on Linux
                        break;
                    }
                }
            }
            p.WaitForExit();
            Assert.Equal(2, stored.Count);
        }
        var (code, stdout, stderr) = RunProcess(dir, "sweep", file, "--store", store, "--jobs", "2");
        Assert.True(code == 0, stderr);
        // At least the two committed rows survived; whatever was committed is not run again.
        int kept = int.Parse(System.Text.RegularExpressions.Regex.Match(stdout, @"(\d+) were already in").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(kept, 2, 7);
        Assert.Contains($"{8 - kept} runs stored", stdout, StringComparison.Ordinal);
        List<SweepRow> rows = Rows(store);
        Assert.Equal(8, rows.Count);
        Assert.Equal(8, rows.Select(r => r.Key).Distinct().Count());
        Assert.Equal(SweepFile.Load(file).Select(r => r.Key).Order(), rows.Select(r => r.Key).Order());
    }

    [Fact]
    public void ShardsRunAsSeparateProcessesMergeToTheSingleProcessSweep()
    {
        string file = TestKit.TempFile("sweep.toml", SmallSweep);
        string dir = Path.GetDirectoryName(file)!;
        const int n = 3;
        var procs = Enumerable.Range(1, n).Select(k => Start(dir, "sweep", file, "--store", Path.Combine(dir, $"shard{k}.duckdb"), "--shard", $"{k}/{n}", "--jobs", "1")).ToList();
        foreach (Process p in procs)
        {
            string err = p.StandardError.ReadToEnd(); // a few short lines: stdout's one line cannot fill its pipe meanwhile
            p.StandardOutput.ReadToEnd();
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "shard hung");
            Assert.True(p.ExitCode == 0, err);
            p.Dispose();
        }
        string merged = Path.Combine(dir, "merged.duckdb");
        var (code, stdout, _) = Cli(["sweep", "merge", merged, .. Enumerable.Range(1, n).Select(k => Path.Combine(dir, $"shard{k}.duckdb"))]);
        Assert.Equal(0, code);
        Assert.Contains("8 rows merged", stdout, StringComparison.Ordinal);

        string single = Path.Combine(dir, "single.duckdb");
        Assert.Equal(0, Cli("sweep", file, "--store", single, "--jobs", "2").Code);
        List<SweepRow> a = Rows(merged), b = Rows(single);
        Assert.Equal(b.Select(r => r.Key), a.Select(r => r.Key));
        Assert.All(a.Zip(b), p => Assert.True(SweepCli.SameResults(p.First, p.Second), $"run {p.First.Key} differs"));

        // Merging again adds nothing; a store whose run differs is refused, and OUT is left as it was.
        Assert.Contains("0 rows merged", Cli("sweep", "merge", merged, single).Out, StringComparison.Ordinal);
        string forged = Path.Combine(dir, "forged.duckdb");
        using (SweepStore s = SweepStore.Open(forged, "test"))
        {
            SweepRow row = b[0];
            var bad = new SweepRow { Key = row.Key };
            bad.Columns.AddRange(row.Columns.Select(c => c.Key == "tlb_ipis" ? new KeyValuePair<string, object>(c.Key, Convert.ToDouble(c.Value, System.Globalization.CultureInfo.InvariantCulture) + 1) : c));
            s.Insert(bad);
        }
        CliTests.AssertRefused("with different results; refusing to merge", "sweep", "merge", Path.Combine(dir, "out.duckdb"), single, forged);
        CliTests.AssertRefused("with different results; refusing to merge", "sweep", "merge", merged, forged);
        Assert.Equal(8, Rows(merged).Count);
    }

    [Fact]
    public void ExportWritesParquetDuckDbReadsBackAndCsvJsonAndAPlot()
    {
        string file = TestKit.TempFile("sweep.toml", SmallSweep);
        string dir = Path.GetDirectoryName(file)!;
        string store = Path.Combine(dir, "r.duckdb");
        Assert.Equal(0, Cli("sweep", file, "--store", store, "--jobs", "2").Code);
        string parquet = Path.Combine(dir, "r.parquet");
        Assert.Equal(0, Cli("sweep", "export", store, "--format", "parquet", "--out", parquet).Code);
        using (var db = new DuckDBConnection("Data Source=:memory:"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"SELECT count(*), count(DISTINCT run_key), sum(\"config.seed\")::BIGINT, min(tlb_ipis_per_s) > 0 FROM read_parquet('{parquet}')";
            using var r = cmd.ExecuteReader();
            Assert.True(r.Read());
            Assert.Equal(8L, Convert.ToInt64(r.GetValue(0), System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(8L, Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(20L, Convert.ToInt64(r.GetValue(2), System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(r.GetBoolean(3));
        }
        string csv = Path.Combine(dir, "r.csv");
        Assert.Equal(0, Cli("sweep", "export", store, "--format", "csv", "--out", csv).Code);
        Assert.Equal(9, File.ReadAllLines(csv).Length);
        string json = Path.Combine(dir, "r.json");
        Assert.Equal(0, Cli("sweep", "export", store, "--format", "json", "--out", json).Code);
        Assert.Equal(8, System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(json))!.AsArray().Count);

        string png = Path.Combine(dir, "p.png");
        Assert.Equal(0, Cli("sweep", "plot", store, "--x", "seed", "--y", "tlb_ipis_per_s", "--out", png).Code);
        Assert.True(new FileInfo(png).Length > 1000);
        string svg = Path.Combine(dir, "p.svg");
        Assert.Equal(0, Cli("sweep", "plot", store, "--x", "seed", "--y", "interrupts_per_s", "--by", "policy", "--out", svg).Code);
        Assert.Contains("<svg", File.ReadAllText(svg), StringComparison.Ordinal);

        CliTests.AssertRefused("unknown --format 'xml'", "sweep", "export", store, "--format", "xml", "--out", Path.Combine(dir, "x"));
        CliTests.AssertRefused("--x 'nope' is not a column of the store", "sweep", "plot", store, "--x", "nope", "--y", "tlb_ipis", "--out", Path.Combine(dir, "q.png"));
        CliTests.AssertRefused("is not numeric", "sweep", "plot", store, "--x", "policy", "--y", "tlb_ipis", "--out", Path.Combine(dir, "q.png"));
        CliTests.AssertRefused("STORE '" + Path.Combine(dir, "none.duckdb") + "' does not exist", "sweep", "export", Path.Combine(dir, "none.duckdb"), "--out", Path.Combine(dir, "y.csv"));
    }
}
