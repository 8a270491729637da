variable "lab" {
  description = "The lab network: the bridge and its subnet (site.lab in factory.yaml)."
  type = object({
    bridge = string
    subnet = string
  })
}

variable "lab_dir" {
  description = "Lab state, keys and overlays; relative to this stack: .factory/<name>/lab."
  type        = string
  default     = "../../../../../lab"
}
