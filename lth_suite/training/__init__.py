"""Training one network or a population of them: the loop, its steppers, data, speed."""
