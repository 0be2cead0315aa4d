using System.CommandLine;
using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Cli;

/// <summary>`shootdown sensitivity`: the reproduction rerun with each cost constant lowered and raised; a tornado per figure.</summary>
internal static class SensitivityCli
{
    public static Command Build()
    {
        var machine = new Option<string>("--machine") { Description = "Machine preset or file FILE.toml; its reproduction's policies and checks when `reproduce` has one, else the 4-node policies' elapsed, user, system time and interrupt rate", DefaultValueFactory = _ => "gorman-4node" };
        var scale = new Option<string?>("--scale") { Description = "Divide memory and file sizes by N (1/N) [default: the machine's reproduction scale (1/16 for gorman-4node), 1/1 for others]" };
        var seed = new Option<string>("--seed") { Description = "Seed of every run (the first seed with --repeat)", DefaultValueFactory = _ => "1" };
        var repeat = new Option<string>("--repeat") { Description = "Seeds per configuration, seed..seed+N-1: each figure is its mean over them, with the 95% noise band the seeds give (a swing within it is marked ~)", DefaultValueFactory = _ => "1" };
        var constants = new Option<string?>("--constants") { HelpName = "NAME,...", Description = "Cost constants to perturb (names of the README's cost table or snake_case keys) [default: every constant the seed's comparison uses: all but the read(2) path's read_syscall_ns and copy_to_user_page_ns, and core_ipc_pct, whose ±50% moves every kernel path exactly as core_clock_mhz's does]" };
        var delta = new Option<string>("--delta") { Description = "Relative perturbation, in (0, 1): each constant runs at x(1-delta) and x(1+delta)", DefaultValueFactory = _ => "0.5" };
        var jobs = new Option<string>("--jobs") { Description = "Runs at once on the host's cores", DefaultValueFactory = _ => "1" };
        var format = new Option<string>("--format") { Description = "Output format: table, json or csv", DefaultValueFactory = _ => "table" };
        var progress = new Option<bool>("--progress") { Description = "Show a progress bar on stderr even with --format json or csv" };
        var plot = new Option<string?>("--plot") { HelpName = "FILE.png|FILE.svg", Description = "Also draw a tornado chart of one figure (--figure)" };
        var figure = new Option<string?>("--figure") { Description = "Figure of the --plot chart, as the report names it [default: vanilla elapsed_s]" };
        var cmd = new Command("sensitivity", "Rerun the reproduction with each cost constant lowered and raised by --delta; how far each moves each figure (a tornado)");
        foreach (Option o in new Option[] { machine, scale, seed, repeat, constants, delta, jobs, format, progress, plot, figure })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string f = pr.GetValue(format)!;
            if (f is not ("table" or "json" or "csv"))
            {
                throw new ConfigException($"unknown --format '{ParseArg.Clip(f)}'; allowed: table, json, csv");
            }
            string machineArg = pr.GetValue(machine)!;
            MachineSpec m = MachineSpec.Resolve(machineArg);
            ReproductionSpec spec = (MachineSpec.IsFile(machineArg) ? null : ReproductionSpec.For(m.Name)) ?? ReproductionSpec.FiguresOnly(m.Name);
            int divisor = pr.GetValue(scale) is { } s ? RunConfig.ParseScale(s) : spec.DefaultScale;
            ulong sd = ParseArg.Unsigned(pr.GetValue(seed)!, "--seed");
            int n = (int)ParseArg.Integer(pr.GetValue(repeat)!, "--repeat", 1, 1000);
            double d = ParseDelta(pr.GetValue(delta)!);
            int j = (int)ParseArg.Integer(pr.GetValue(jobs)!, "--jobs", 1, 1024);
            IReadOnlyList<string> names = pr.GetValue(constants) is { } cs ? ParseConstants(cs) : CostModel.Names.Except(CostModel.ReadPathNames).Except([nameof(CostModel.CoreIpcPct), nameof(CostModel.ThreadsPerCore), nameof(CostModel.SmtThroughputPct)]).ToArray();
            string? plotPath = pr.GetValue(plot);
            string figureName = pr.GetValue(figure) ?? spec.Checks[0].Name;
            if (pr.GetValue(figure) is not null && plotPath is null)
            {
                throw new ConfigException("--figure picks the figure of the --plot chart; add --plot FILE.png or drop --figure");
            }
            if (plotPath is not null)
            {
                if (!plotPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase) && !plotPath.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
                {
                    throw new ConfigException($"--plot '{ParseArg.Clip(plotPath)}' must end in .png or .svg");
                }
                if (spec.Checks.All(c => c.Name != figureName))
                {
                    throw new ConfigException($"unknown --figure '{ParseArg.Clip(figureName)}'; figures of {m.Name}: {string.Join(", ", spec.Checks.Select(c => c.Name))}");
                }
                ShootdownCli.EnsureWritableFile("--plot", plotPath);
            }
            RunConfig baseConfig = RunConfig.Create(machine: machineArg, scaleDivisor: divisor, workload: ReproductionSpec.Workload, policy: spec.Policies[0], seed: sd);
            // Refuse unknown names and a bad delta before any run.
            var (planned, _) = Sensitivity.Plan(baseConfig.Costs, names, d);
            int total = Sensitivity.CountRuns(spec, planned, n);
            Sensitivity result = ShootdownCli.WithProgress(f == "table" || pr.GetValue(progress), $"sensitivity ({total} runs)", total,
                onRun => Sensitivity.Run(baseConfig, spec, names, d, j, onRun, n));
            if (plotPath is not null)
            {
                FigureSensitivity fs = result.Figures.First(x => x.Figure == figureName);
                TornadoPlot.Write(fs, result.Delta, $"{m.Name}, scale 1/{divisor}, {SeedStats.Describe(sd, n)}", plotPath);
                Console.Error.WriteLine($"wrote {plotPath}");
            }
            Console.Out.Write(f switch
            {
                "json" => result.ToJson() + "\n",
                "csv" => result.ToCsv(),
                _ => result.ToText(machineArg),
            });
            return ShootdownCli.ExitOk;
        });
        return cmd;
    }

    /// <summary>A number strictly between 0 and 1.</summary>
    internal static double ParseDelta(string s)
    {
        if (!double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || !(d > 0 && d < 1))
        {
            throw new ConfigException($"--delta must be a number between 0 and 1 (exclusive), e.g. 0.5 for ±50%, got '{ParseArg.Clip(s)}'");
        }
        return d;
    }

    /// <summary>Comma-separated constant names, canonical, no duplicates.</summary>
    internal static IReadOnlyList<string> ParseConstants(string list)
    {
        string[] items = list.Split(',', StringSplitOptions.TrimEntries);
        if (items.Any(string.IsNullOrEmpty))
        {
            throw new ConfigException($"malformed --constants '{ParseArg.Clip(list)}'; expected a comma-separated list such as IpiSendNs,clear_page_ns");
        }
        var names = new List<string>();
        foreach (string item in items)
        {
            string name = CostModel.Canonical(item) ?? throw CostModel.Unknown(item);
            if (name == nameof(CostModel.ThreadsPerCore))
            {
                throw new ConfigException("ThreadsPerCore in --constants: it describes the cores' topology, not a cost, and half or 1.5 times it is no machine; compare whole machines with reproduce --cost threads_per_core=N (with --cost smt_throughput_pct=200 to keep each thread at the constants' speed)");
            }
            if (name == nameof(CostModel.SmtThroughputPct))
            {
                throw new ConfigException("SmtThroughputPct in --constants: its range is 100..200 (what two threads of a core get done, in percent of one thread alone), so half of it is no machine; compare with reproduce --cost smt_throughput_pct=N");
            }
            if (names.Contains(name))
            {
                throw new ConfigException($"cost constant {name} appears twice in --constants");
            }
            names.Add(name);
        }
        return names;
    }
}
