using System.Text.RegularExpressions;
using CsCheck;
using Shootdown.Hardware;

namespace Shootdown.Tests;

/// <summary>A run's configuration as JSON and TOML: round trips, replays, and errors naming file, line and key.</summary>
[Collection("console")]
public class ConfigTests
{
    private static string WithoutWallTime(string json) => TestKit.WithoutWallTime(json);

    private static string Temp(string name, string text) => TestKit.TempFile(name, text);

    [Theory]
    [InlineData("run", "--machine", "tiny", "--scale", "1/4", "--policy", "rfc-pfn32", "--batch-size", "16", "--cost", "ipi_send_ns=70", "--seed", "5")]
    [InlineData("run", "--machine", "tiny", "--scale", "1/4", "--workload", "lru-file-mmap-write", "--policy", "linux-4.3", "--swap-cluster-max", "16", "--flush-ceiling", "8")]
    [InlineData("run", "--machine", "tiny", "--nodes", "2", "--memory", "128MiB", "--scale", "1/2", "--cost", "TlbEntries=1024", "--cost", "TlbWays=8")]
    [InlineData("run", "--machine", "tiny", "--scale", "1/4", "--cpu-speed", "1.76", "--cost", "ClearPageNs=500")]
    public void RunConfigOfARunsJsonReproducesItByteForByte(params string[] args)
    {
        var (code, first, err) = CliTests.Cli([.. args, "--format", "json"]);
        Assert.True(code == 0, err);
        string file = Temp("run.json", first);
        var (code2, again, err2) = CliTests.Cli("run", "--config", file, "--format", "json");
        Assert.True(code2 == 0, err2);
        Assert.Equal(WithoutWallTime(first), WithoutWallTime(again));
        // And through TOML: `shootdown config --config run.json` gives a file that replays the same run.
        var (code3, toml, _) = CliTests.Cli("config", "--config", file);
        Assert.Equal(0, code3);
        var (code4, viaToml, err4) = CliTests.Cli("run", "--config", Temp("run.toml", toml), "--format", "json");
        Assert.True(code4 == 0, err4);
        Assert.Equal(WithoutWallTime(first), WithoutWallTime(viaToml));
    }

    [Fact]
    public void JsonAndTomlRoundTripEveryKey()
    {
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 8, workload: "mprotect-race", policy: "rfc-pfn-page", seed: 42,
            policyParams: new Policies.PolicyParams { BatchSize = 100, SwapClusterMax = 64, FlushCeiling = 5 }, stopOnKind: "write_after_protect")
            with
            {
                Costs = CostModel.Xeon2015.With("ClearPageNs", 1234).With("TickNs", 1_000_000),
                Sched = new Kernel.Sched.SchedParams { Spread = false, KswapdFirstCpuOffset = 2 },
                SeriesIntervalNs = 250_000_000,
            };
        Assert.Equal(cfg, ConfigFile.FromJson(ConfigFile.ToJson(cfg), "x.json"));
        Assert.Equal(cfg, ConfigFile.FromToml(ConfigFile.ToToml(cfg), "x.toml"));
        Assert.Contains("[costs]\n", ConfigFile.ToToml(cfg), StringComparison.Ordinal);
        Assert.Contains("clear_page_ns = 1234\n", ConfigFile.ToToml(cfg), StringComparison.Ordinal);
    }

    [Fact]
    public void KeysLeftOutTakeThePresetsValues()
    {
        RunConfig cfg = ConfigFile.FromToml("machine = \"small-2node\"\nscale_divisor = 16\npolicy_name = \"linux-4.3\"\n[costs]\nipi_send_ns = 90\n", "x.toml");
        Assert.Equal(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "linux-4.3") with { Costs = CostModel.Xeon2015 with { IpiSendNs = 90 } }, cfg);
    }

    [Theory]
    [InlineData("machine = \"tiny\"\nnodez = 3\n", "x.toml:2: key 'nodez': unknown key; allowed here: machine, nodes")]
    [InlineData("machine = \"tiny\"\n[costs]\nipi_send_ns = \"x\"\n", "x.toml:3: key 'costs.ipi_send_ns': expected an integer")]
    [InlineData("machine = \"tiny\"\n\n[costs]\ntick_ns = 0\n", "x.toml:4: key 'costs.tick_ns': cost constant TickNs must be in 1000..1000000000, got 0")]
    [InlineData("machine = \"tiny\"\n[costs]\nnope_ns = 1\n", "x.toml:3: key 'costs.nope_ns': unknown key; allowed here: core_clock_mhz")]
    [InlineData("machine = \"tiny\"\nseed = \n", "x.toml:2: not valid TOML")]
    [InlineData("machine = \"nope\"\n", "x.toml:1: key 'machine': unknown machine preset 'nope'")]
    [InlineData("machine = \"tiny\"\npolicy_name = \"x\"\n", "x.toml:2: key 'policy_name': unknown policy 'x'")]
    [InlineData("machine = \"tiny\"\nnodes = 0\n", "x.toml:2: key 'nodes': --nodes must be in 1..4096, got 0")]
    [InlineData("machine = \"tiny\"\n[sched]\nspread = 3\n", "x.toml:3: key 'sched.spread': expected true or false")]
    [InlineData("machine = \"tiny\"\nnr_cpus = 7\n", "x.toml:2: key 'nr_cpus': 7 disagrees with nodes x cpus_per_node = 4")]
    [InlineData("machine = \"tiny\"\nseries_interval_ns = 7000000\n", "x.toml:2: key 'series_interval_ns': series_interval_ns must divide a second")]
    public void BadTomlNamesFileLineAndKey(string toml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigFile.FromToml(toml, "x.toml"));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"config\": {\"machine\": \"tiny\",\n \"nodes\": \"x\"}}", "x.json:2: key 'nodes': expected an integer")]
    [InlineData("{\"machine\": \"tiny\",\n \"nodes\": 3", "x.json:2: not valid JSON")]
    [InlineData("[1, 2]", "x.json: expected a JSON object")]
    public void BadJsonNamesFileLineAndKey(string json, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigFile.FromJson(json, "x.json"));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MemcgIsOnByDefaultAndTheConfigCommandRecordsItsSetting()
    {
        var (code, json, _) = CliTests.Cli("config", "--machine", "tiny", "--format", "json");
        Assert.Equal(0, code);
        Assert.True(System.Text.Json.Nodes.JsonNode.Parse(json)!["policy"]!["memcg"]!.GetValue<bool>());
        (code, json, _) = CliTests.Cli("config", "--machine", "tiny", "--memcg", "off", "--format", "json");
        Assert.Equal(0, code);
        Assert.False(System.Text.Json.Nodes.JsonNode.Parse(json)!["policy"]!["memcg"]!.GetValue<bool>());
        (code, string toml, _) = CliTests.Cli("config", "--machine", "tiny", "--memcg", "off");
        Assert.Equal(0, code);
        Assert.False(ConfigFile.FromToml(toml, "c.toml").Policy.Memcg);
    }

    [Fact]
    public void ConfigWithOtherConfigurationOptionsIsRefused()
    {
        string file = Temp("c.toml", "machine = \"tiny\"\n");
        var (code, _, err) = CliTests.Cli("run", "--config", file, "--policy", "linux-4.3");
        Assert.Equal(2, code);
        Assert.Contains($"--config replays '{file}' as written; drop --policy", err, StringComparison.Ordinal);
        (code, _, err) = CliTests.Cli("run", "--config", file, "--cpu-speed", "2");
        Assert.Equal(2, code);
        Assert.Contains($"--config replays '{file}' as written; drop --cpu-speed", err, StringComparison.Ordinal);
        // Kernel settings are part of the file too: an option that would change one is refused, not ignored.
        (code, _, err) = CliTests.Cli("run", "--config", file, "--memcg", "off");
        Assert.Equal(2, code);
        Assert.Contains($"--config replays '{file}' as written; drop --memcg", err, StringComparison.Ordinal);
        (code, _, err) = CliTests.Cli("run", "--config", file, "--pte-accessible-check", "off");
        Assert.Equal(2, code);
        Assert.Contains($"--config replays '{file}' as written; drop --pte-accessible-check", err, StringComparison.Ordinal);
        (code, _, err) = CliTests.Cli("run", "--config", "/nonexistent/c.toml");
        Assert.Equal(2, code);
        Assert.Contains("cannot read --config '/nonexistent/c.toml'", err, StringComparison.Ordinal);
    }

    [Fact]
    public void TheOraclesReplayLineReplaysTheSameViolation()
    {
        var (code, json, err) = CliTests.Cli("run", "--workload", "lru-file-mmap-write", "--policy", "rfc-pfn32", "--machine", "small-2node", "--scale", "1/16", "--stop-on-violation", "lost_write", "--format", "json");
        Assert.Equal(4, code);
        string replay = Regex.Match(err, "replay: (shootdown run --config RUN.json --stop-on-violation lost_write)").Groups[1].Value;
        Assert.NotEmpty(replay);
        string file = Temp("RUN.json", json);
        string[] args = replay.Replace("RUN.json", file, StringComparison.Ordinal).Split(' ')[1..];
        var (code2, json2, err2) = CliTests.Cli([.. args, "--format", "json"]);
        Assert.Equal(4, code2);
        Assert.Equal(WithoutWallTime(json), WithoutWallTime(json2));
        Assert.Equal(err.Split('\n')[0], err2.Split('\n')[0]);
    }

    /// <summary>Random text and random edits of a valid file: a result or one ConfigException, never anything else.</summary>
    [Fact]
    public void ParsersOnlyEverThrowConfigExceptions()
    {
        // The case the fuzzing below found (seed 35ZBiSke2Pn1 at 300,000 iterations): a string
        // whose backslash ends the text made Tomlyn's lexer throw ArgumentOutOfRangeException
        // while it worded its error.
        var bad = Assert.Throws<ConfigException>(() => ConfigFile.FromToml("machine = \"tiny\"\nworkload = \"dn9U\\", "x.toml"));
        Assert.Equal("x.toml:2: not valid TOML: a string ends in an escape that names no character", bad.Message);
        // And one it found in session 28 (seed 6s7WINzrC4_1): TOML's inf and nan, which JSON cannot
        // hold, made the conversion throw ArgumentException.
        bad = Assert.Throws<ConfigException>(() => ConfigFile.FromToml("machine = \"tiny\"\nseed = inf\n", "x.toml"));
        Assert.Equal("x.toml:2: key 'seed': expected a finite number, not inf", bad.Message);
        bad = Assert.Throws<ConfigException>(() => ConfigFile.FromToml("machine = \"tiny\"\n[costs]\nipi_send_ns = -nan\n", "x.toml"));
        Assert.Equal("x.toml:3: key 'costs.ipi_send_ns': expected a finite number, not nan", bad.Message);
        string valid = ConfigFile.ToToml(RunConfig.Create(machine: "tiny", scaleDivisor: 4));
        string[] lines = valid.Split('\n');
        Gen.Select(Gen.Int[0, lines.Length - 1], Gen.String[0, 20], Gen.Bool).Sample((line, junk, json) =>
        {
            string[] copy = (string[])lines.Clone();
            int eq = copy[line].IndexOf('=', StringComparison.Ordinal);
            copy[line] = eq > 0 ? copy[line][..(eq + 1)] + " " + junk : junk;
            string toml = string.Join('\n', copy);
            try
            {
                _ = json ? ConfigFile.FromJson(junk, "x.json") : ConfigFile.FromToml(toml, "x.toml");
            }
            catch (ConfigException e)
            {
                Assert.DoesNotContain('\n', e.Message.TrimEnd('\n'));
                Assert.StartsWith("x.", e.Message, StringComparison.Ordinal);
            }
        }, iter: 2000);
    }
}
