using System.Text.Json;
using Shootdown.Hardware;

namespace Shootdown.Tests;

/// <summary>Machines as data: embedded preset files, users' machine files, the NUMA distance matrix.</summary>
[Collection("console")]
public class MachineTests
{
    private static string Temp(string text) => TestKit.TempFile("m.toml", text);

    [Fact]
    public void PresetsAreTheEmbeddedFiles()
    {
        Assert.Equal(["brickland3", "cascadelake-2s", "gorman-1node", "gorman-4node", "small-2node", "tiny"], MachineSpec.PresetNames);
        MachineSpec g = MachineSpec.Preset("gorman-4node");
        Assert.Equal((4, 12, 64L << 30), (g.Nodes, g.CpusPerNode, g.MemoryBytes));
        // Its processors, Xeon E7-4807s, differ from the defaults in the core, its caches and its IPI send.
        Assert.Equal(
            CostModel.Xeon2015 with
            {
                CoreClockMhz = 1870,
                CoreIpcPct = 84,
                TlbEntries = 512,
                TlbWays = 4,
                PageWalkNs = 21,
                InvlpgNs = 124,
                FullFlushNs = 58,
                IpiSendNs = 214,
                LlcBytes = 18L << 20,
                ThreadsPerCore = 2,
                SmtThroughputPct = 115,
            },
            g.Costs);
        Assert.Equal(NumaDistance.Uniform(4), g.Distance);
        MachineSpec c = MachineSpec.Preset("cascadelake-2s");
        Assert.Equal((2, 48, 128L << 30), (c.Nodes, c.CpusPerNode, c.MemoryBytes));
        Assert.Equal(400, c.Costs.ClearPageNs); // its [hardware] table overrides the defaults
        Assert.Equal(1200, c.Costs.IpiLatencyRemoteNodeNs);
        var (code, stdout, _) = CliTests.Cli("machines");
        Assert.Equal(0, code);
        Assert.Equal(MachineSpec.PresetNames, stdout.TrimEnd('\n').Split('\n').Select(l => l.Split(' ')[0]));
        Assert.Contains("4 x 12 CPUs, 64 GiB", stdout, StringComparison.Ordinal);
        (code, stdout, _) = CliTests.Cli("machines", "small-2node");
        Assert.Equal(0, code);
        Assert.Equal(MachineSpec.Preset("small-2node"), MachineFile.Parse(stdout, "copy.toml") with { });
    }

    [Fact]
    public void AUsersMachineFileRunsAndItsResultReplaysWithoutTheFile()
    {
        string file = Temp("name = \"mine\"\ndescription = \"two small nodes\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\nnuma_distance = [[10, 42], [42, 10]]\n[hardware]\nipi_send_ns = 80\n");
        var (code, json, err) = CliTests.Cli("run", "--machine", file, "--scale", "1/1", "--format", "json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(json))
        {
            var cfg = doc.RootElement.GetProperty("config");
            Assert.Equal("mine", cfg.GetProperty("machine").GetString());
            Assert.Equal(42, cfg.GetProperty("numa_distance")[0][1].GetInt32());
            Assert.Equal(80, cfg.GetProperty("costs").GetProperty("ipi_send_ns").GetInt64());
        }
        string result = Path.Combine(Path.GetDirectoryName(file)!, "run.json");
        File.WriteAllText(result, json);
        File.Delete(file);
        var (code2, again, err2) = CliTests.Cli("run", "--config", result, "--format", "json");
        Assert.True(code2 == 0, err2);
        Assert.Equal(TestKit.WithoutWallTime(json), TestKit.WithoutWallTime(again));
    }

    [Fact]
    public void FartherNodesMakeRemoteIpisSlower()
    {
        RunConfig Two(int d) => RunConfig.Create(machine: "small-2node", scaleDivisor: 64) with
        {
            NumaDistance = new NumaDistance([[10, d], [d, 10]]),
        };
        var near = Runner.Run(Two(21));
        var far = Runner.Run(Two(60));
        Assert.True(far.IpiWaitS > near.IpiWaitS * 1.2, $"ipi wait {near.IpiWaitS} at 21, {far.IpiWaitS} at 60");
        Assert.Equal(Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 64)).ToJson().Split("\"events\"")[0], near.ToJson().Split("\"events\"")[0]);
    }

    [Theory]
    [InlineData("nodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\n", "m.toml: key 'name' is missing")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus = 2\n", "m.toml:3: key 'cpus': unknown key; allowed: name, description")]
    [InlineData("name = \"x\"\nnodes = 0\ncpus_per_node = 2\nmemory = \"64MiB\"\n", "m.toml:2: key 'nodes': must be in 1..4096, got 0")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = \"two\"\nmemory = \"64MiB\"\n", "m.toml:3: key 'cpus_per_node': expected an integer in 1..4096")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64Mx\"\n", "m.toml:4: key 'memory': malformed size '64Mx'")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\nnuma_distance = [[10, 21]]\n", "m.toml:5: key 'numa_distance': numa_distance must be 2 rows of 2 distances")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\nnuma_distance = [[10, 21], [21, 11]]\n", "m.toml:5: key 'numa_distance': numa_distance[1][1] is 11; the diagonal must be 10")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\nnuma_distance = \"far\"\n", "m.toml:5: key 'numa_distance': expected rows of integer distances")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\n\n[hardware]\nipi_send_ns = -5\n", "m.toml:7: key 'hardware.ipi_send_ns': cost constant IpiSendNs must be in 0..1000000000 ns, got -5")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\n\n[hardware]\ntick_ns = 5000\n", "m.toml:7: key 'hardware.tick_ns': TickNs is a kernel-path constant, the same on every machine (stated for a 3.4 GHz core; set core_clock_mhz and core_ipc_pct to scale them)")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\n[costs]\nipi_send_ns = 5\n", "m.toml:5: key 'costs': a machine file describes hardware only")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\nnope = 5\n", "m.toml:6: key 'hardware.nope': unknown cost constant 'nope'")]
    [InlineData("name = \"x\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\ntlb_ways = 7\n", "m.toml:6: key 'hardware.tlb_entries': TlbEntries=1536 with TlbWays=7")]
    [InlineData("name = \"x\"\nnodes = = 2\n", "m.toml:2: not valid TOML")]
    public void BadMachineFilesNameFileLineAndKey(string toml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MachineFile.Parse(toml, "m.toml"));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
        string file = Temp(toml);
        var (code, _, err) = CliTests.Cli("run", "--machine", file);
        Assert.Equal(2, code);
        Assert.StartsWith("shootdown: " + expected.Replace("m.toml", file, StringComparison.Ordinal), err, StringComparison.Ordinal);
    }
}
