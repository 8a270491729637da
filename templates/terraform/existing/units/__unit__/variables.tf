# Each host's facts as one JSON string (address, country, gpu_model, gpus, group, index,
# interface, oob_address, rack, roles), recorded as is: a map of strings plans faster than
# a map of typed objects, and plan still shows a changed host as a JSON diff.
variable "hosts" {
  description = "Facts of this unit's hosts, by host name, each a JSON object in a string."
  type        = map(string)
}
