namespace MLNetGpt.Bench;
/// <summary>
/// `probe FOLDER[,FOLDER...]`: how far a verification pass's logits are from one-token steps' on each model (relative to
/// a position's logit range), the figure that decides whether speculation is exact there.
/// </summary>
internal static class SpeculationProbeReport
{
    public static void Run(string folder)
    {
        foreach (var f in folder.Split(','))
        {
            using var model = GptModel.Open(f, new GptModelOptions { IntraOpThreads = 2 });
            Console.WriteLine($"{Path.GetFileName(f)}: {MLNetGpt.Generation.SpeculationProbe.Difference(model.Engine.Backend, model.Info):E2}");
        }
    }
}
