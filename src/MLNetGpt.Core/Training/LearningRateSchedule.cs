namespace MLNetGpt.Training;

/// <summary>
/// Linear warm-up then cosine decay to 0: Hugging Face's <c>get_cosine_schedule_with_warmup</c> (half a cosine cycle)
/// driven by torch's <c>LambdaLR</c>, so optimizer step t (counted from 0) uses peak × factor(t). With a warm-up the first
/// step's rate is 0, as there.
/// </summary>
internal readonly record struct LearningRateSchedule(double Peak, int WarmupSteps, int TotalSteps)
{
    /// <summary>The rate of optimizer step <paramref name="step"/> (0-based).</summary>
    public double At(int step) => Peak * Factor(step, WarmupSteps, TotalSteps);

    public static double Factor(int step, int warmupSteps, int totalSteps)
    {
        if (step < warmupSteps) return (double)step / Math.Max(1, warmupSteps);
        double progress = (double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps);
        return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * progress)));
    }
}
